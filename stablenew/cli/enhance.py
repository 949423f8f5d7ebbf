"""`stablenew enhance PROMPT`: enhance a prompt with a local LLM, or refine it from feedback.

Prints the new prompt on stdout and what code checked on stderr; with `--json`, one object
with the prompts, the structured changes and the checks. When the LLM fails, the original
prompt is printed (a script can go on with it) and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "enhance", help="enhance a prompt with a local LLM, or refine it from feedback",
        description="Enhance a prompt with a local LLM (LM Studio, Ollama, llama.cpp server, vLLM) "
                    "in a style, or refine it from your feedback about the images. Weights, "
                    "<lora:…> tags and __wildcards__ are kept as you wrote them.")
    parser.add_argument("prompt", help='the prompt, e.g. "a cat in a red scarf"')
    parser.add_argument("--template", default=None,
                        help="enhance style: general, cinematic, anime, photo, painting, "
                             "concept-art, or one of yours (default: the one in Settings)")
    parser.add_argument("--family", default="sdxl", choices=("sd15", "sdxl", "pony", "flux", "sd3"),
                        help="the image model the prompt is for: tags or sentences, and a "
                             "token budget (default sdxl)")
    parser.add_argument("--feedback", default=None,
                        help='refine instead: your words about the images, e.g. "moodier, keep the pose"')
    parser.add_argument("--image", metavar="PNG", default=None,
                        help="an image you liked: a vision model describes it for 'more like this'")
    parser.add_argument("--url", default=None,
                        help="the LLM server (default: Settings, else LM Studio or Ollama on this computer)")
    parser.add_argument("--model", default=None,
                        help="the model (default: Settings, else the server's first)")
    parser.add_argument("--vision-model", default=None,
                        help="the model that describes --image (default: --model)")
    parser.add_argument("--stream", action="store_true", help="show the answer on stderr as it arrives")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from stablenew.cli._common import app_settings
    from stablenew.prompting.templates import (
        DEFAULT_TEMPLATE,
        ModelFamily,
        get_template,
        user_templates_dir,
    )

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")  # a Windows console may not encode every character
    paths, settings = app_settings()
    image: tuple[bytes, str] | None = None
    if args.image:
        file = Path(args.image)
        if not file.is_file():
            print(f"stablenew enhance: the image {file} does not exist.", file=sys.stderr)
            return 2
        image = (file.read_bytes(), IMAGE_TYPES.get(file.suffix.lower(), "image/png"))
    name = args.template or settings.llm_template or DEFAULT_TEMPLATE
    try:
        template = get_template(name, user_templates_dir(paths))
    except KeyError as exc:
        print(f"stablenew enhance: {exc.args[0]}", file=sys.stderr)
        return 2
    options = _Options(url=args.url or settings.llm_url or None,
                       api_key=settings.llm_api_key.get_secret_value(),
                       model=args.model or settings.llm_model or None,
                       family=ModelFamily(args.family))
    return asyncio.run(_main(args, options, template, image))


@dataclass(frozen=True)
class _Options:
    """Where the LLM is and what it is asked with."""

    url: str | None
    api_key: str
    model: str | None
    family: Any


async def _main(args: argparse.Namespace, options: _Options, template: Any,
                image: tuple[bytes, str] | None) -> int:
    from stablenew.prompting.addresses import address_warning
    from stablenew.prompting.client import LLMClient, find_local_server
    from stablenew.prompting.enhance import enhance
    from stablenew.prompting.errors import LLMError
    from stablenew.prompting.refine import describe, refine

    def live(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    on_token = live if args.stream else None
    client = None
    try:
        if options.url:
            warning = address_warning(options.url)
            if warning:
                print(f"Warning: {warning}", file=sys.stderr)
            client = LLMClient(options.url, api_key=options.api_key)
        else:
            client = await find_local_server(api_key=options.api_key)
        model = options.model or await _first_model(client)
        out: dict[str, Any] = {"original": args.prompt, "url": client.base_url, "model": model,
                               "family": options.family.value}
        if args.feedback or image:
            picked = []
            if image is not None:
                picked.append(await describe(client, image[0], model=args.vision_model or model,
                                             mime=image[1]))
            feedback = args.feedback or "more like the image I picked"
            result = await refine(client, args.prompt, feedback, model=model, family=options.family,
                                  picked=picked, on_token=on_token)
            out.update(result.as_dict(), mode="refine", feedback=feedback)
        else:
            enhanced = await enhance(client, args.prompt, template, model=model,
                                     family=options.family, on_token=on_token)
            out.update(mode="enhance", prompt=enhanced.prompt, template=enhanced.template,
                       checks=enhanced.checks, seconds=round(enhanced.seconds, 3))
    except LLMError as exc:
        if args.json:
            print(json.dumps({"original": args.prompt, "prompt": args.prompt, "error": exc.message}))
        else:
            print(args.prompt)
        print(f"stablenew enhance: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            await client.aclose()
    if args.stream:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(out["prompt"])
    for line in out.get("diff", []):
        print(line, file=sys.stderr)
    for check in out.get("checks", []):
        print(f"checked: {check}", file=sys.stderr)
    return 0


async def _first_model(client: Any) -> str:
    from stablenew.prompting.errors import LLMModelMissing

    models = await client.models()
    if not models:
        raise LLMModelMissing("The LLM server has no model loaded. Load or pull one, or name it "
                              "with --model.", model="", detail=f"{client.base_url}: empty model list")
    return models[0]
