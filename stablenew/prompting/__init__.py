"""Prompting: a local LLM (OpenAI-compatible or Ollama) enhances prompts and refines them from
the user's feedback, every answer checked in code; pure Python, no Qt.

A down or slow LLM never blocks generation: every failure is a typed `LLMError` and callers
go on with the original prompt.
"""
