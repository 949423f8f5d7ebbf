"""A fake CivitAI: a real aiohttp server on 127.0.0.1 with the REST API v1 shapes trending uses.

`GET /api/v1/images` (limit 0–200, else 400 as the site's validation answers; `cursor` paging
through `metadata.nextCursor`; `page` × `limit` over 1000 refused with 429 as the site does;
`withMeta` — only the literal `true` — else every `meta` is null; `browsingLevel` bitmask,
`baseModels`, `sort`, `period`), `GET /api/v1/model-versions/by-hash/{hash}` and
`/model-versions/{id}` (404 `{"error": …}` when unknown), file downloads
(`/api/download/models/{id}`), and image files at their CDN-like URLs. Busy answers
(429/503 with `Retry-After`) are scripted with `busy()`; `drop_downloads` cuts that many
downloads midway. Every request is kept in `requests` (path, query, Authorization).
The items are built from the documented shapes with the variants seen in the wild
(`wild_items()`): meta null, `civitaiResources` only, `hashes` only, wrong types,
duplicate LoRAs, an R-rated image, an SDXL image, an image without LoRAs.
Standalone: `python -m tests.fakes.civitai --port 8765`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.catalog.factory import PNG_2PX
from tests.fakes.serving import ServesItself

MAX_LIMIT = 200
PAGE_WINDOW = 1000


@dataclass
class Seen:
    """One request the fake answered."""

    path: str
    query: dict[str, str]
    authorization: str | None


def lora_file(seed: str, size: int = 4096) -> bytes:
    """Bytes standing for a LoRA file offered for download (not a real model)."""
    return (hashlib.sha256(seed.encode()).digest() * (size // 32 + 1))[:size]


class FakeCivitai(ServesItself):
    """CivitAI's public API v1 as trending combos use it."""

    def __init__(self, items: list[dict[str, Any]] | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, api_key: str | None = None) -> None:
        self.host, self.port = host, port
        self.url = ""
        self.items: list[dict[str, Any]] = items if items is not None else []
        #: model versions by id (the `/model-versions` shape)
        self.versions: dict[int, dict[str, Any]] = {}
        #: file bytes served at `/api/download/models/{id}`
        self.files: dict[int, bytes] = {}
        self.api_key = api_key  # when set, a missing or wrong Bearer key is answered 401
        self.requests: list[Seen] = []
        self.drop_downloads = 0
        self._busy: deque[tuple[int, str | None]] = deque()
        self._runner: web.AppRunner | None = None

    def busy(self, status: int = 429, retry_after: str | None = "1", times: int = 1) -> None:
        """Answer the next *times* API requests with *status* and this Retry-After."""
        self._busy.extend([(status, retry_after)] * times)

    def image_url(self, image_id: int, width: int = 1024) -> str:
        return f"{self.url}/xG1nkqKTMzGDvpLrqFT7WA/{image_id:08x}-uuid/width={width}/{image_id}.jpeg"

    def add_version(self, version_id: int, name: str, *, model_id: int | None = None,
                    base_model: str = "SD 1.5", nsfw: bool = False, kind: str = "LORA",
                    data: bytes | None = None, autov3: str = "", file_name: str = "") -> dict[str, Any]:
        """A model version with one primary file whose hashes are those of *data*."""
        data = data if data is not None else lora_file(name)
        sha = hashlib.sha256(data).hexdigest()
        version = {
            "id": version_id, "modelId": model_id or version_id + 100000, "name": "v1.0",
            "baseModel": base_model, "trainedWords": [name.lower()], "downloadUrl":
                f"{self.url}/api/download/models/{version_id}",
            "model": {"name": name, "type": kind, "nsfw": nsfw, "poi": False},
            "files": [{"name": file_name or f"{name}.safetensors", "sizeKB": len(data) / 1024,
                       "type": "Model", "primary": True,
                       "hashes": {"AutoV1": sha[:8].upper(), "AutoV2": sha[:10].upper(),
                                  "SHA256": sha.upper(), "CRC32": "DEADBEEF",
                                  "AutoV3": (autov3 or sha[:12]).upper(), "BLAKE3": sha.upper()},
                       "downloadUrl": f"{self.url}/api/download/models/{version_id}"}],
            "images": [],
        }
        self.versions[version_id] = version
        self.files[version_id] = data
        return version

    async def start(self) -> str:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/v1/images", self._images)
        app.router.add_get("/api/v1/model-versions/by-hash/{hash}", self._by_hash)
        app.router.add_get("/api/v1/model-versions/{id}", self._by_id)
        app.router.add_get("/api/download/models/{id}", self._download)
        app.router.add_get("/{key}/{uuid}/{options}/{file}", self._image_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(Seen(request.path, dict(request.query), request.headers.get("Authorization")))
        if request.path.startswith("/api/"):
            if self._busy:
                status, retry_after = self._busy.popleft()
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return web.json_response({"error": "Too many requests"}, status=status, headers=headers)
            if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    def image_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path == "/api/v1/images"]

    # --- /api/v1/images --------------------------------------------------------------------

    async def _images(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "100"))
            page = int(q["page"]) if "page" in q else None
        except ValueError:
            return _invalid("limit and page must be numbers")
        if not 0 <= limit <= MAX_LIMIT:
            return _invalid(f"limit must be between 0 and {MAX_LIMIT}")
        if page is not None and page * limit > PAGE_WINDOW:
            return web.json_response({"error": "Please use cursor based pagination for large "
                                      "offsets"}, status=429)
        items = self._matching(q)
        if "cursor" in q:
            try:
                start = int(q["cursor"].split("|", 1)[0])
            except ValueError:
                return _invalid("cursor is not one we gave")
        else:
            start = ((page or 1) - 1) * limit
        chunk = copy.deepcopy(items[start:start + limit])
        if q.get("withMeta") != "true":
            for item in chunk:
                item["meta"] = None
        end = start + len(chunk)
        metadata: dict[str, Any] = {}
        if end < len(items):
            metadata["nextCursor"] = f"{end}|1733400000000"
            metadata["nextPage"] = f"{self.url}/api/v1/images?cursor={end}%7C1733400000000&limit={limit}"
        return web.json_response({"items": chunk, "metadata": metadata})

    def _matching(self, q: Any) -> list[dict[str, Any]]:
        level = int(q.get("browsingLevel", "31"))
        bases = {b for b in q.get("baseModels", "").split(",") if b}
        out = [i for i in self.items if not isinstance(i.get("browsingLevel"), int)
               or i["browsingLevel"] & level]
        if bases:
            out = [i for i in out if i.get("baseModel") in bases]
        sort = q.get("sort", "Most Reactions")

        def stat(item: dict[str, Any], *keys: str) -> int:
            stats = item.get("stats") if isinstance(item.get("stats"), dict) else {}
            return sum(v for k in keys if isinstance(v := stats.get(k), int))

        if sort == "Newest":
            return sorted(out, key=lambda i: str(i.get("createdAt", "")), reverse=True)
        if sort == "Most Comments":
            return sorted(out, key=lambda i: stat(i, "commentCount"), reverse=True)
        if sort == "Most Collected":
            return sorted(out, key=lambda i: stat(i, "collectedCount"), reverse=True)
        return sorted(out, key=lambda i: stat(i, "likeCount", "heartCount", "laughCount", "cryCount"),
                      reverse=True)

    # --- model versions, downloads, image files ------------------------------------------

    async def _by_hash(self, request: web.Request) -> web.Response:
        wanted = request.match_info["hash"].upper()
        for version in self.versions.values():
            for file in version["files"]:
                if wanted in {str(h).upper() for h in file["hashes"].values()}:
                    return web.json_response(version)
        return web.json_response({"error": "Model not found"}, status=404)

    async def _by_id(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        version = self.versions.get(int(wanted)) if wanted.isdigit() else None
        if version is None:
            return web.json_response({"error": "Model not found"}, status=404)
        return web.json_response(version)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(int(request.match_info["id"]))
        if data is None:
            return web.json_response({"error": "Model not found"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(len(data))})
        await response.prepare(request)
        if self.drop_downloads > 0:
            self.drop_downloads -= 1
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()  # the connection breaks midway
            return response
        await response.write(data)
        await response.write_eof()
        return response

    async def _image_file(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG_2PX, content_type="image/png")


def _invalid(message: str) -> web.Response:
    return web.json_response({"error": message, "code": "BAD_REQUEST"}, status=400)


# ----- the items seen in the wild --------------------------------------------------------------


def item(image_id: int, fake: FakeCivitai, *, meta: Any, reactions: int = 10, level: int = 1,
         base: str = "SD 1.5", versions: list[int] | None = None, comments: int = 0) -> dict[str, Any]:
    """One `/api/v1/images` item in the documented shape."""
    return {
        "id": image_id, "url": fake.image_url(image_id), "hash": "U9Ch:8~q00IU00%M%MRj~qIU_3%M",
        "width": 512, "height": 768, "type": "image", "nsfwLevel": level, "nsfw": level > 1,
        "browsingLevel": level, "createdAt": f"2026-12-0{image_id % 5 + 1}T10:00:00.000Z",
        "postId": image_id * 10, "username": f"artist{image_id}", "baseModel": base,
        "modelVersionIds": versions or [],
        "stats": {"cryCount": 0, "laughCount": 1, "likeCount": reactions, "dislikeCount": 0,
                  "heartCount": 2, "commentCount": comments},
        "meta": meta,
    }


def wild_items(fake: FakeCivitai, *, neon_hash: str, detail_hash: str) -> list[dict[str, Any]]:
    """The variants trending must read; *neon_hash*/*detail_hash* are local LoRAs' AutoV3."""
    return [
        # A1111: resources with hashes, `hashes` with lora:<name>, the LoRA in the prompt too.
        item(101, fake, reactions=90, comments=5, meta={
            "prompt": "a neon city at night, <lora:neon:0.7>, masterpiece", "negativePrompt": "blurry",
            "seed": 1234, "steps": 28, "sampler": "DPM++ 2M Karras", "cfgScale": 6.5, "clipSkip": 2,
            "Size": "512x768", "Model": "dreamshaper_8", "Model hash": "879db523c3",
            "resources": [{"name": "neon", "type": "lora", "weight": 0.7, "hash": neon_hash},
                          {"name": "dreamshaper_8", "type": "model", "hash": "879db523c3"}],
            "hashes": {"model": "879db523c3", "lora:neon": neon_hash}}),
        # CivitAI's generator: civitaiResources only, by version id.
        item(102, fake, reactions=80, versions=[128713, 555001], meta={
            "prompt": "a watercolor fox", "negativePrompt": "", "steps": 25, "sampler": "Euler a",
            "cfgScale": 7, "seed": 99,
            "civitaiResources": [{"type": "checkpoint", "modelVersionId": 128713},
                                 {"type": "lora", "weight": 0.8, "modelVersionId": 555001,
                                  "modelVersionName": "v1.0"}]}),
        # `hashes` only (ComfyUI uploads), the weight from the prompt.
        item(103, fake, reactions=70, meta={
            "prompt": "portrait, <lora:add_detail:0.5>", "hashes": {"lora:add_detail": detail_hash}}),
        # meta null: the author hid the settings.
        item(104, fake, reactions=60, meta=None),
        # Wrong types everywhere.
        item(105, fake, reactions=50, meta={
            "prompt": "odd types, <lora:neon:0.9>", "steps": "twenty", "cfgScale": "7.5",
            "seed": "4242", "resources": "not a list", "hashes": ["lora:neon"], "Size": 512,
            "negativePrompt": 42}),
        # The same LoRA named four ways.
        item(106, fake, reactions=40, meta={
            "prompt": "glow, <lora:neon:0.6>",
            "resources": [{"name": "neon", "type": "lora", "weight": 0.6, "hash": neon_hash},
                          {"name": "neon", "type": "LORA", "weight": 0.6}],
            "hashes": {"lora:neon": neon_hash},
            "additionalResources": [{"name": "neon", "type": "lora", "strength": 0.6}]}),
        # R-rated: only with a browsing level that allows it.
        item(107, fake, reactions=200, level=4, meta={
            "prompt": "r rated, <lora:neon:1>", "hashes": {"lora:neon": neon_hash}}),
        # SDXL, a LoRA nobody here has.
        item(108, fake, reactions=30, base="SDXL 1.0", meta={
            "prompt": "xl things, <lora:xl_magic:1>", "steps": 30,
            "resources": [{"name": "xl_magic", "type": "lora", "weight": 1.0, "hash": "abcdefabcdef"}]}),
        # No LoRA at all.
        item(109, fake, reactions=20, meta={"prompt": "just a prompt", "steps": 20}),
    ]


# ----- pytest fixtures (import them into a conftest.py) -----

@pytest_asyncio.fixture
async def fake_civitai():
    """A started fake on the test's event loop (items empty: the test adds them)."""
    async with FakeCivitai() as fake:
        yield fake


@pytest.fixture
def fake_civitai_thread():
    """A fake serving from its own thread (GUI and CLI tests)."""
    with FakeCivitai().running_in_thread() as fake:
        yield fake


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake CivitAI API.")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    async def serve() -> None:
        async with FakeCivitai(port=args.port) as fake:
            fake.items = wild_items(fake, neon_hash="0123456789ab", detail_hash="ba9876543210")
            print(f"fake CivitAI at {fake.url}", flush=True)
            print(json.dumps({"try": f"{fake.url}/api/v1/images?limit=5&withMeta=true"}), flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
