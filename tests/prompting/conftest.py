"""Prompting tests talk to the fake LLM server over real HTTP on 127.0.0.1."""

from __future__ import annotations

from tests.fakes.llm import fake_llm, fake_llm_thread  # noqa: F401  (fixtures)
