"""ServerController.ensure_backend: one connect in flight for every caller, and the typed reason
when it fails (a wrong password is AuthFailed, not "no server answers")."""

from __future__ import annotations

import asyncio

import pytest

from stablenew.backends.errors import AuthFailed
from stablenew.controller.server_controller import ServerController
from stablenew.storage.settings import AppSettings
from tests.fakes.sdwebui import FakeSDWebUI


async def test_two_callers_share_one_connect_and_one_backend(qtbot):
    async with FakeSDWebUI(step_ms=1) as fake:
        server = ServerController(AppSettings(server_url=fake.url))
        try:
            first, second = await asyncio.wait_for(
                asyncio.gather(server.ensure_backend(), server.ensure_backend()), 20)
            assert first is second
            assert len(fake.requests_to("/sdapi/v1/sd-models")) == 1  # one probe, one backend
            assert await server.ensure_backend() is first
        finally:
            await server.aclose()


async def test_a_caller_giving_up_does_not_cancel_the_shared_connect(qtbot):
    async with FakeSDWebUI(step_ms=1) as fake:
        fake.inject("stall", path="/system_stats", seconds=0.3)
        server = ServerController(AppSettings(server_url=fake.url))
        try:
            impatient = asyncio.ensure_future(server.ensure_backend())
            patient = asyncio.ensure_future(server.ensure_backend())
            await asyncio.sleep(0.05)
            impatient.cancel()
            backend = await asyncio.wait_for(patient, 20)
            assert backend is not None and impatient.cancelled()
        finally:
            await server.aclose()


@pytest.mark.parametrize("given", [("me", "wrong"), ("", "")])
async def test_a_refused_login_is_auth_failed_not_no_server(qtbot, given):
    async with FakeSDWebUI(step_ms=1, auth=("me", "secret")) as fake:
        user, password = given
        server = ServerController(AppSettings(server_url=fake.url, username=user, password=password))
        try:
            with pytest.raises(AuthFailed) as info:
                await asyncio.wait_for(server.ensure_backend(), 20)
        finally:
            await server.aclose()
    text = info.value.message
    assert "No Stable Diffusion server answers" not in text
    assert ("wrong user or password" in text) if user else ("wants a user name and password" in text)
