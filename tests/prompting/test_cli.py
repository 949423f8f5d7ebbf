"""`stablenew enhance` against the fake LLM over real HTTP."""

from __future__ import annotations

import json

import pytest

from stablenew.cli import main
from tests.fakes.llm import FakeLLM

CHANGES = {"keep": ["standing pose"], "remove": ["daylight"], "add": ["rain"]}


def test_enhance_prints_the_checked_prompt(fake_llm_thread, capsys):
    fake_llm_thread.reply("Here is your prompt:\n```\na (red hair:1.5) woman, 85mm, rim light\n```")
    code = main(["enhance", "a (red hair:1.2) woman", "--url", fake_llm_thread.url,
                 "--template", "cinematic"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == "a (red hair:1.2) woman, 85mm, rim light\n"
    assert "checked: kept the weight (red hair:1.2) as you wrote it" in err
    # No --model: the server's first model.
    assert fake_llm_thread.requests[-1][1]["model"] == "llama3.2:3b"


def test_json_carries_prompts_changes_and_checks(fake_llm_thread, capsys):
    fake_llm_thread.reply(json.dumps(CHANGES), fence=True)
    fake_llm_thread.reply("a woman, standing pose, rain, daylight, bokeh")
    code = main(["enhance", "a woman, standing pose, daylight", "--url", fake_llm_thread.url,
                 "--model", "llama3.2:3b", "--feedback", "keep the pose, rain, no daylight", "--json"])
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert code == 0 and data["mode"] == "refine"
    assert data["prompt"] == "a woman, standing pose, rain"
    assert data["original"] == "a woman, standing pose, daylight"
    assert data["changes"]["remove"] == ["daylight"]
    assert "dropped 'bokeh', which nobody asked for" in data["checks"]
    assert data["diff"] == ["- daylight", "+ rain"]


def test_an_image_is_described_for_more_like_this(fake_llm_thread, capsys, tmp_path):
    image = tmp_path / "picked.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    fake_llm_thread.reply("woman under neon lights, wet street")
    fake_llm_thread.reply('{"add": ["neon lights"]}')
    fake_llm_thread.reply("a woman, neon lights, wet street")
    code = main(["enhance", "a woman", "--url", fake_llm_thread.url, "--model", "llama3.2:3b",
                 "--vision-model", "llava:7b", "--image", str(image), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["descriptions"] == ["woman under neon lights, wet street"]
    assert data["prompt"] == "a woman, neon lights, wet street"
    describe_body = fake_llm_thread.requests[0][1]
    assert describe_body["model"] == "llava:7b"
    assert describe_body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_failing_llm_prints_the_original_and_exits_1(fake_llm_thread, capsys):
    code = main(["enhance", "a cat", "--url", fake_llm_thread.url, "--model", "missing:1b"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "a cat\n"
    assert "no model called 'missing:1b'" in err


def test_an_unknown_template_names_the_known_ones(capsys):
    code = main(["enhance", "a cat", "--template", "vaporwave", "--url", "http://127.0.0.1:9"])
    assert code == 2 and "cinematic" in capsys.readouterr().err


@pytest.mark.parametrize("flavor", ["ollama"])
def test_streaming_shows_tokens_on_stderr(flavor, capsys):
    with FakeLLM(flavor=flavor).running_in_thread() as fake:
        fake.reply("a cat, soft light")
        code = main(["enhance", "a cat", "--url", fake.url, "--stream"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "a cat, soft light\n" and "a cat, soft light" in err


def test_the_llm_in_settings_is_used_with_its_key(capsys):
    from pydantic import SecretStr

    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, save_settings

    with FakeLLM(api_key="sk-7", models=("qwen2.5:7b",)).running_in_thread() as fake:
        save_settings(AppPaths.default(), AppSettings(llm_url=fake.url, llm_model="qwen2.5:7b",
                                                      llm_api_key=SecretStr("sk-7"),
                                                      llm_template="photo"))
        fake.reply("a cat, 50mm, window light")
        code = main(["enhance", "a cat"])
        system = fake.requests[-1][1]["messages"][0]["content"]
    out, err = capsys.readouterr()
    assert code == 0 and out == "a cat, 50mm, window light\n"
    assert "believable photograph" in system and "sk-7" not in err
