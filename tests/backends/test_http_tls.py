"""TLS settings of the HTTP layer: no CA bundle loaded on every connect (it blocked the window's
thread ~0.1 s each time), and https still checked against the CAs."""

from __future__ import annotations

import ssl

from stablenew.backends.connect import connect
from stablenew.backends.http import tls_context
from tests.fakes.sdwebui import FakeSDWebUI


async def test_connecting_to_an_http_node_loads_no_ca_bundle(monkeypatch):
    loads: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self, *args, **kwargs):
        loads.append(args or kwargs)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    async with FakeSDWebUI() as fake:
        for _ in range(3):
            backend = await connect(fake.url)
            await backend.probe()
            await backend.aclose()
    assert loads == []


def test_https_addresses_share_one_context_that_checks_certificates():
    first, second = tls_context("https://box.lan:7860"), tls_context("https://other.lan")
    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert first.cert_store_stats()["x509_ca"] > 0


def test_an_http_address_gets_a_context_that_would_trust_no_certificate():
    plain = tls_context("http://127.0.0.1:7860")
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
