"""The AUTOMATIC1111 / Forge / SD.Next WebUI client (`/sdapi/v1`), one `Backend` implementation."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from stablenew.backends import a1111_fields as F
from stablenew.backends.a1111_controlnet import add_references
from stablenew.backends.a1111_families import hires_cfg_for
from stablenew.backends.a1111_payloads import (
    adetailer_payload,
    b64,
    img2img_payload,
    txt2img_payload,
    upscale_payload,
)
from stablenew.backends.a1111_truth import Expectation, compare, infotext_params, same_checkpoint
from stablenew.backends.errors import (
    AuthFailed,
    BackendError,
    JobInterrupted,
    MissingResource,
    ProtocolError,
    RequestRejected,
    ServerError,
    ServerTimeout,
)
from stablenew.backends.http import (
    DEFAULT_MAX_BODY,
    LISTING_MAX_BODY,
    SHORT_TIMEOUT,
    HttpClient,
    HttpReply,
)
from stablenew.backends.types import (
    ADetailerJob,
    BackendKind,
    Capabilities,
    GeneratedImage,
    Img2ImgJob,
    JobResult,
    Progress,
    ProgressCallback,
    RanWith,
    Txt2ImgJob,
    UpscaleJob,
)

log = logging.getLogger(__name__)

_WEBUI_KINDS = (BackendKind.a1111, BackendKind.forge, BackendKind.sdnext)
#: Job answers up to this size are parsed and checked on the event loop (well under 0.5 ms);
#: larger ones (a 512x512 SD image is ~0.5 MB of base64) in a worker thread.
INLINE_BODY_BYTES = 64 * 1024
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"))


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def image_format(data: bytes) -> str | None:
    """PNG/JPEG/WEBP from the magic bytes (the server's `samples_format` decides the format)."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(text: Any, where: str, url: str, node: str = "") -> tuple[bytes, tuple[int, int]]:
    """Base64 (or a data URL) to encoded bytes, checked to be a whole, readable image."""
    if not isinstance(text, str) or not text:
        raise ProtocolError(f"The server at {url} sent an empty or missing image.",
                            detail=f"{where}: image field is {type(text).__name__}", node=node)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"The server at {url} sent an image that is not valid base64.",
                            detail=f"{where}: {exc}; starts with {text[:40]!r}", node=node) from exc
    fmt = image_format(data)
    if fmt is None:
        raise ProtocolError(f"The server at {url} sent data that is not a PNG, JPEG or WEBP image.",
                            detail=f"{where}: {len(data)} bytes starting with {data[:16]!r}", node=node)
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ProtocolError(f"The server at {url} sent a {fmt} image that does not decode.",
                            detail=f"{where}: {exc!r} ({len(data)} bytes)", node=node) from exc
    return data, size


def _error_text(body: Any) -> str:
    """The message in a FastAPI/HTTPException (`detail`), A1111 (`errors`) or Forge (`message`) body."""
    if isinstance(body, dict):
        for key in ("detail", "errors", "message"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        if isinstance(body.get("error"), str):
            return body["error"]
    if isinstance(body, str) and body.strip():
        return body.strip()
    return ""


_MISSING = (
    (re.compile(r"could not find upscaler named (.+)", re.I), "upscaler"),
    (re.compile(r"model '(.+)' not found", re.I), "checkpoint"),
    (re.compile(r"could not find checkpoint with name (.+)", re.I), "checkpoint"),
    (re.compile(r"sampler not found: (.+)", re.I), "sampler"),
    (re.compile(r"always on script (.+) not found", re.I), "extension"),
)


def _missing_resource(text: str) -> tuple[str, str] | None:
    """(what, name) when an error message says a named model/upscaler/sampler is not installed."""
    for pattern, what in _MISSING:
        found = pattern.search(text)
        if found:
            return what, found.group(1).strip().strip("'\"")
    return None


def _short(text: str, limit: int = 300) -> str:
    """An error text fit for a sentence: one paragraph, no trailing period, not a wall of text."""
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rejected_fields(detail: Any) -> tuple[str, ...]:
    if not isinstance(detail, list):
        return ()
    fields: list[str] = []
    for entry in detail:
        loc = entry.get("loc") if isinstance(entry, dict) else None
        if isinstance(loc, list):
            parts = [str(p) for p in loc if p != "body"]
            if parts:
                fields.append(".".join(parts))
    return tuple(dict.fromkeys(fields))


class A1111Backend:
    """Drives an AUTOMATIC1111, Forge or SD.Next WebUI through its `/sdapi/v1` API."""

    def __init__(self, url: str, *, name: str | None = None, auth: tuple[str, str] | None = None,
                 timeout: float = 600.0, kind: BackendKind | None = None, poll_interval: float = 0.5,
                 max_body: int = DEFAULT_MAX_BODY, previews: bool = True) -> None:
        self.url = normalise_url(url)
        self.name = name or self.url.split("://", 1)[-1]
        self.timeout = timeout
        self.short_timeout = min(SHORT_TIMEOUT, timeout)
        self.poll_interval = poll_interval
        self.max_body = max_body
        #: Ask for the live preview with each progress poll (the `live_previews` setting).
        self.previews = previews
        if kind is not None and BackendKind(kind) not in _WEBUI_KINDS:
            raise ValueError(f"A1111Backend drives A1111, Forge or SD.Next, not {kind}")
        self._kind: BackendKind | None = BackendKind(kind) if kind is not None else None
        self._auth = auth
        self._http = HttpClient(self.url, auth=auth, node=self.name)
        #: None until known; False when the server runs without /internal (--nowebui).
        self._internal: bool | None = None
        self._in_flight: dict[str, str] = {}  # task id -> endpoint
        self._interrupt_wanted: set[str] = set()
        self._interrupt_sent: set[str] = set()
        #: Our tasks that someone else stopped on the server (its /progress said interrupted
        #: or skipped while our task ran): task id -> which of the two.
        self._stopped_by_others: dict[str, str] = {}
        #: Without task ids: the job that was running when we sent each request (never ours).
        self._before: dict[str, _RunningJob | None] = {}
        self._capabilities: Capabilities | None = None
        #: Tasks that stop our abandoned, still-queued requests once they start (see `_reap`).
        self._reapers: set[asyncio.Task[None]] = set()
        #: A1111/Forge tell their version only in a job's info; remembered for the next probe.
        self._version_seen = ""

    # ----- identity -----

    @property
    def kind(self) -> BackendKind:
        """The server kind; A1111 until probing says otherwise."""
        return self._kind or BackendKind.a1111

    @property
    def capabilities(self) -> Capabilities | None:
        """What the last `probe()` found (None before the first probe)."""
        return self._capabilities

    async def detect_kind(self) -> BackendKind:
        """Ask the server what it is (SD.Next: /version; Forge: /sd-modules; else A1111)."""
        sdnext, forge = await _all(
            self._http.request("GET", "/sdapi/v1/version", timeout=self.short_timeout),
            self._http.request("GET", "/sdapi/v1/sd-modules", timeout=self.short_timeout))
        for reply in (sdnext, forge):
            if reply.status in (401, 403):
                self._check(reply)
        if sdnext.status == 200:
            return BackendKind.sdnext
        if forge.status == 200:
            return BackendKind.forge
        return BackendKind.a1111

    async def resolve_kind(self) -> BackendKind:
        """The kind, detected on first use when the constructor was not told it."""
        if self._kind is None:
            self._kind = await self.detect_kind()
        return self._kind

    # ----- low level -----

    def _check(self, reply: HttpReply) -> None:
        """Raise the typed error an HTTP status stands for."""
        status = reply.status
        if 200 <= status < 300:
            return
        path = reply.url[len(self.url):] or reply.url
        try:
            body: Any = reply.json()
        except ProtocolError:
            body = reply.body[:300].decode("utf-8", "replace")
        text = _error_text(body)
        detail = f"HTTP {status} from {reply.url}: {str(body)[:2000]}"
        if status in (401, 403):
            if self._auth:
                raise AuthFailed(f"The server at {self.url} refused the user name and password (wrong "
                                 "user or password). Check them in Settings (they must match its "
                                 "--api-auth).",
                                 detail=detail, node=self.name)
            raise AuthFailed(f"The server at {self.url} wants a user name and password (--api-auth). "
                             "Enter them in Settings.", detail=detail, node=self.name)
        missing = _missing_resource(text)
        if missing is not None:
            what, name = missing
            caps = self._capabilities
            installed: tuple[str, ...] = ()
            if caps is not None:
                installed = {"upscaler": caps.upscalers, "checkpoint": caps.checkpoints,
                             "sampler": caps.samplers}.get(what, ())
            if what == "extension":
                message = (f"The server at {self.url} does not have the {name} extension. Install it "
                           "there, or run this step on another server.")
            else:
                message = (f"The server at {self.url} has no {what} named '{name}'. Pick one it has "
                           "(refresh the lists in Settings) or install it there.")
            raise MissingResource(message, what=what, name=name, installed=installed, detail=detail,
                                  node=self.name)
        if status == 422:
            raw = body.get("detail") if isinstance(body, dict) else None
            fields = _rejected_fields(raw)
            what = f"invalid {', '.join(fields)}" if fields else _short(text or "invalid request")
            raise RequestRejected(f"The server at {self.url} rejected the request ({what}). "
                                  "Check these settings, or update StableNew if the server is newer.",
                                  fields=fields, detail=detail, node=self.name)
        if status == 404 and text in ("", "Not Found"):
            raise RequestRejected(f"The server at {self.url} has no {path}. Start it with --api, and check "
                                  "that the address points to an A1111/Forge WebUI.",
                                  detail=detail, node=self.name)
        reason = _short(text) or f"HTTP {status}"
        if status < 500:
            raise RequestRejected(f"The server at {self.url} refused the request: {reason}.",
                                  detail=detail, node=self.name)
        hint = ""
        if "out of memory" in text.lower():
            hint = " Try a smaller size or batch, or close other programs using the GPU."
        raise ServerError(f"The server at {self.url} failed: {reason}.{hint}", detail=detail, node=self.name)

    async def _get(self, path: str, *, params: dict[str, Any] | None = None, optional: bool = False
                   ) -> Any:
        reply = await self._http.request("GET", path, params=params, timeout=self.short_timeout,
                                         max_body=LISTING_MAX_BODY)
        if optional and reply.status == 404:
            return None
        self._check(reply)
        return reply.json()

    async def _post(self, path: str, body: Any, *, timeout: float | None = None,
                    max_body: int = LISTING_MAX_BODY) -> HttpReply:
        reply = await self._http.request("POST", path, json_body=body,
                                         timeout=self.short_timeout if timeout is None else timeout,
                                         max_body=max_body)
        return reply

    # ----- health and capabilities -----

    async def ping(self) -> None:
        data = await self._get("/sdapi/v1/progress", params={"skip_current_image": "true"})
        if not isinstance(data, dict) or "progress" not in data:
            raise ProtocolError(f"The server at {self.url} answers, but not like an A1111/Forge WebUI.",
                                detail=f"/sdapi/v1/progress returned {str(data)[:300]}", node=self.name)

    async def probe(self) -> Capabilities:
        kind = await self.resolve_kind()
        results = await _all(
            self.options(), self.checkpoints(), self.samplers(), self.schedulers(), self.upscalers(),
            self.loras(), self.embeddings(), self.adetailer_models(), self.memory(), self._version(kind))
        (options, checkpoints, samplers, schedulers, upscalers, loras, embeddings, ad, memory,
         version) = results
        cuda = memory.get("cuda") if isinstance(memory, dict) else None
        system = cuda.get("system") if isinstance(cuda, dict) else None
        vram_total = vram_free = None
        device = "cpu"
        has_gpu = None  # no CUDA may still be Apple's GPU: unknown, not "none"
        if isinstance(system, dict):
            has_gpu = True
            device = "cuda"
            vram_total = system.get("total") if isinstance(system.get("total"), int) else None
            vram_free = system.get("free") if isinstance(system.get("free"), int) else None
        current = options.get(F.OPTION_CHECKPOINT, "") if isinstance(options, dict) else ""
        caps = Capabilities(
            kind=kind, version=version, device=device, vram_total=vram_total, vram_free=vram_free,
            checkpoints=checkpoints, samplers=samplers, schedulers=schedulers, upscalers=upscalers,
            loras=loras, embeddings=embeddings, adetailer_models=ad, has_gpu=has_gpu,
            current_checkpoint=_strip_hash(current) if isinstance(current, str) else "")
        self._capabilities = caps
        return caps

    async def _version(self, kind: BackendKind) -> str:
        if kind != BackendKind.sdnext:
            return self._version_seen
        data = await self._get("/sdapi/v1/version", optional=True)
        if isinstance(data, dict):
            return str(data.get("updated") or data.get("version") or data.get("hash") or "")
        return ""

    async def options(self) -> dict[str, Any]:
        data = await self._get("/sdapi/v1/options")
        if not isinstance(data, dict):
            raise ProtocolError(f"The server at {self.url} sent its settings in an unexpected shape.",
                                detail=f"/options returned {type(data).__name__}", node=self.name)
        return data

    async def set_options(self, values: dict[str, Any]) -> None:
        """Change server settings; A1111 answers 200 even when a change failed, so we read them back."""
        reply = await self._post(F.OPTIONS, values, timeout=self.timeout)
        self._check(reply)
        now = await self.options()
        for key, value in values.items():
            got = now.get(key)
            same = same_checkpoint(str(value), str(got)) if key == F.OPTION_CHECKPOINT else got == value
            if not same:
                raise ServerError(f"The server at {self.url} did not apply the setting {key} "
                                  f"(asked {value!r}, it still has {got!r}). See its console for why.",
                                  detail=f"POST /options {values!r}; GET /options -> {key}={got!r}",
                                  node=self.name)

    async def set_checkpoint(self, checkpoint: str) -> None:
        """Switch the loaded checkpoint (A1111 waits for the running job, then loads it)."""
        await self.set_options({F.OPTION_CHECKPOINT: checkpoint})

    async def checkpoints(self) -> tuple[str, ...]:
        data = await self._get("/sdapi/v1/sd-models")
        # Titles gain a "[hash]" once the hash is computed; the bare title stays a valid alias.
        return tuple(_strip_hash(str(m.get("title", ""))) for m in _items(data) if m.get("title"))

    async def samplers(self) -> tuple[str, ...]:
        return tuple(str(m["name"]) for m in _items(await self._get("/sdapi/v1/samplers")) if m.get("name"))

    async def schedulers(self) -> tuple[str, ...]:
        data = await self._get("/sdapi/v1/schedulers", optional=True)
        return tuple(str(m.get("label") or m.get("name")) for m in _items(data)
                     if m.get("label") or m.get("name"))

    async def upscalers(self) -> tuple[str, ...]:
        """Upscaler names including the latent hires modes ("Latent", "Latent (bicubic)", …)."""
        regular, latent = await _all(self._get("/sdapi/v1/upscalers"),
                                               self._get("/sdapi/v1/latent-upscale-modes", optional=True))
        names = [str(m["name"]) for m in _items(latent) if m.get("name")]
        names += [str(m["name"]) for m in _items(regular) if m.get("name")]
        return tuple(dict.fromkeys(names))

    async def loras(self) -> tuple[str, ...]:
        data = await self._get("/sdapi/v1/loras", optional=True)
        # `<lora:X>` finds a LoRA by its name (the file stem) or its alias: both are listed.
        names = (m.get(key) for m in _items(data) if m.get("name") for key in ("name", "alias"))
        return tuple(dict.fromkeys(str(n) for n in names if n))

    async def embeddings(self) -> tuple[str, ...]:
        data = await self._get("/sdapi/v1/embeddings", optional=True)
        loaded = data.get("loaded") if isinstance(data, dict) else None
        return tuple(str(k) for k in loaded) if isinstance(loaded, dict) else ()

    async def adetailer_models(self) -> tuple[str, ...]:
        """ADetailer's detector models; empty when the extension is not installed."""
        data = await self._get("/adetailer/v1/ad_model", optional=True)
        models = data.get("ad_model") if isinstance(data, dict) else None
        return tuple(str(m) for m in models) if isinstance(models, list) else ()

    async def memory(self) -> dict[str, Any]:
        data = await self._get("/sdapi/v1/memory", optional=True)
        return data if isinstance(data, dict) else {}

    async def refresh_checkpoints(self) -> None:
        self._check(await self._post("/sdapi/v1/refresh-checkpoints", None, timeout=self.timeout))

    async def png_info(self, image: bytes) -> dict[str, Any]:
        """The server's reading of an image's infotext: `{info, items, parameters}`."""
        reply = await self._post(F.PNG_INFO, {"image": b64(image)})
        self._check(reply)
        data = await asyncio.to_thread(reply.json)
        if not isinstance(data, dict):
            raise ProtocolError(f"The server at {self.url} sent PNG info in an unexpected shape.",
                                detail=str(data)[:300], node=self.name)
        return data

    # ----- generation -----

    async def txt2img(self, job: Txt2ImgJob, on_progress: ProgressCallback | None = None) -> JobResult:
        kind = await self.resolve_kind()
        s = job.sampling
        size = (s.width, s.height)
        if job.hires is not None:
            size = _hires_size(s.width, s.height, job.hires.scale, job.hires.resize_width,
                               job.hires.resize_height)
        hires_cfg = None
        if job.hires is not None and kind == BackendKind.forge:
            hires_cfg = hires_cfg_for(s, job.hires.cfg_scale)
        expect = Expectation(s, job.batch_size, size, hires_cfg=hires_cfg)
        # With hires fix each image is two jobs on the server: the first pass, then the hires one.
        passes = ("", "hires") if job.hires is not None else ("",)
        body = txt2img_payload(job, kind)
        checked = await add_references(body, job.references, s, self._get, self.name)
        return checked(await self._generate(F.TXT2IMG, body, job.task_id, on_progress, expect, passes))

    async def img2img(self, job: Img2ImgJob, on_progress: ProgressCallback | None = None) -> JobResult:
        kind = await self.resolve_kind()
        s = job.sampling
        expect = Expectation(s, 1, (s.width, s.height))
        body = img2img_payload(job, kind)
        checked = await add_references(body, job.references, s, self._get, self.name)
        return checked(await self._generate(F.IMG2IMG, body, job.task_id, on_progress, expect))

    async def adetailer(self, job: ADetailerJob, on_progress: ProgressCallback | None = None) -> JobResult:
        kind = await self.resolve_kind()
        size = _input_size(job.image, "ADetailer")
        expect = Expectation(job.sampling, 1, size, adetailer=job.passes)
        payload = adetailer_payload(job, kind, size)
        return await self._generate(F.IMG2IMG, payload, job.task_id, on_progress, expect)

    async def upscale(self, job: UpscaleJob, on_progress: ProgressCallback | None = None) -> JobResult:
        width, height = _input_size(job.image, "the upscaler")
        if job.target_width > 0 and job.target_height > 0:
            expected = (job.target_width, job.target_height)
        else:
            expected = (int(width * job.scale), int(height * job.scale))
        self._in_flight[job.task_id] = F.EXTRAS_SINGLE
        try:
            reply = await self._post(F.EXTRAS_SINGLE, upscale_payload(job), timeout=self.timeout,
                                     max_body=self.max_body)
        finally:
            self._in_flight.pop(job.task_id, None)
        interrupted = job.task_id in self._interrupt_wanted
        self._interrupt_wanted.discard(job.task_id)
        self._check(reply)
        if interrupted:
            raise JobInterrupted("The upscale was stopped; its result was discarded.",
                                 detail=f"task {job.task_id}", node=self.name)
        data = await asyncio.to_thread(reply.json)
        if not isinstance(data, dict) or "image" not in data:
            raise ProtocolError(f"The server at {self.url} answered the upscale without an image.",
                                detail=str(data)[:300], node=self.name)
        encoded, size = await asyncio.to_thread(decode_image, data["image"], F.EXTRAS_SINGLE, self.url,
                                               self.name)
        source = _infotext_of(job.image)
        seed = _int_or(infotext_params(source).get("Seed"), 0)
        warnings = []
        if size != expected:
            warnings.append(f"Size: asked for {expected[0]}x{expected[1]}, the server returned "
                            f"{size[0]}x{size[1]}.")
        if on_progress is not None:
            _notify(on_progress, Progress(fraction=1.0))
        return JobResult(images=(GeneratedImage(encoded, seed, source),),
                         info={"html_info": data.get("html_info", "")}, warnings=tuple(warnings))

    async def _generate(self, endpoint: str, payload: dict[str, Any], task_id: str,
                        on_progress: ProgressCallback | None, expect: Expectation,
                        passes: tuple[str, ...] = ("",)) -> JobResult:
        if self._internal is None and self.kind != BackendKind.sdnext:
            await self._learn_internal(task_id)  # once per client: are there per-task ids?
        if self._internal is not True:  # no task ids: note whose job runs now
            self._before[task_id] = await self._running_job()
        self._in_flight[task_id] = endpoint
        poller = asyncio.create_task(self._watch(task_id, endpoint, on_progress, passes),
                                     name=f"progress {task_id}")
        try:
            reply = await self._post(endpoint, payload, timeout=self.timeout, max_body=self.max_body)
        except (asyncio.CancelledError, ServerTimeout):
            # A WebUI runs a request to the end even when the client hangs up: since nobody will
            # take this result, stop our task now or as soon as it leaves the server's queue.
            if task_id not in self._interrupt_sent:
                self._interrupt_wanted.add(task_id)
                self._start_reaper(task_id)
            raise
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            self._in_flight.pop(task_id, None)
            self._before.pop(task_id, None)
            stopped = self._stopped_by_others.pop(task_id, None)
        interrupted = task_id in self._interrupt_wanted
        self._interrupt_wanted.discard(task_id)
        self._interrupt_sent.discard(task_id)
        if interrupted:
            # Partial images (or an error caused by the stop) are not a result.
            raise JobInterrupted("The job was stopped before it finished.",
                                 detail=f"task {task_id}: HTTP {reply.status}, partial result discarded",
                                 node=self.name)
        self._check(reply)
        # Parsing, base64 and the image check in one hop off the loop (each hop costs a thread
        # hand-off); an answer small enough to take less than that is read right here.
        if len(reply.body) <= INLINE_BODY_BYTES:
            info, images, sizes, infotexts = self._read_answer(reply, endpoint)
        else:
            info, images, sizes, infotexts = await asyncio.to_thread(self._read_answer, reply,
                                                                     endpoint)
        if isinstance(info.get("version"), str) and info["version"]:
            self._version_seen = info["version"]
        if on_progress is not None:
            steps = expect.sampling.steps
            _notify(on_progress, Progress(fraction=1.0, step=steps, steps=steps, eta_seconds=0.0))
        warnings = compare(expect, info, sizes, infotexts)
        incomplete = ""
        if stopped is not None:
            what = "pressed Interrupt" if stopped == "interrupted" else "pressed Skip"
            incomplete = (f"someone else {what} on the server at {self.url} while it ran, and "
                          "the server returned what it had so far")
            log.warning("%s: task %s was %s by someone else; its images are incomplete",
                        self.name, task_id, stopped)
        for text in warnings:
            # The caller shows each warning to the user; a WARNING record here would be printed
            # a second time by Python's last-resort handler wherever logging is not set up (CLI).
            log.info("%s: %s", self.name, text)
        return JobResult(images=tuple(images), info=info, warnings=tuple(warnings),
                         ran=_ran_with(info), incomplete=incomplete)

    def _read_answer(self, reply: Any, endpoint: str) -> tuple[
            dict[str, Any], list[GeneratedImage], list[tuple[int, int]], list[str]]:
        """The job's answer: its info and its checked images (blocking; see `_generate`)."""
        data = reply.json()
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ProtocolError(f"The server at {self.url} answered without an image list.",
                                detail=f"{endpoint}: {str(data)[:300]}", node=self.name)
        info = _parse_info(data.get("info"), self.url, endpoint, self.name)
        return (info, *self._images(data["images"], info, endpoint))

    def _images(self, raw: list[Any], info: dict[str, Any], endpoint: str
                ) -> tuple[list[GeneratedImage], list[tuple[int, int]], list[str]]:
        """Decode and check the images that belong to the job (not a grid, masks or extras)."""
        first = info.get("index_of_first_image", 0)
        first = first if isinstance(first, int) and 0 <= first <= len(raw) else 0
        infotexts = info.get("infotexts")
        seeds = info.get("all_seeds")
        end = len(infotexts) if isinstance(infotexts, list) and infotexts else len(raw)
        images, sizes, texts = [], [], []
        for index in range(first, min(end, len(raw))):
            encoded, size = decode_image(raw[index], f"{endpoint} image {index}", self.url, self.name)
            text = infotexts[index] if isinstance(infotexts, list) and index < len(infotexts) else ""
            n = index - first
            seed = seeds[n] if isinstance(seeds, list) and n < len(seeds) and isinstance(seeds[n], int) \
                else _int_or(info.get("seed"), 0) + n
            images.append(GeneratedImage(encoded, seed, str(text or "")))
            sizes.append(size)
            texts.append(str(text or ""))
        return images, sizes, texts

    # ----- progress, interrupt, skip -----

    async def _internal_progress(self, task_id: str, *, preview_id: int = -1, preview: bool = False
                                 ) -> dict[str, Any] | None:
        """Our task's progress from /internal/progress, or None when the server lacks it."""
        if self._internal is False or self.kind == BackendKind.sdnext:
            return None
        reply = await self._post(F.INTERNAL_PROGRESS, {"id_task": task_id, "id_live_preview": preview_id,
                                                       "live_preview": preview})
        if reply.status == 404:
            self._internal = False
            return None
        self._check(reply)
        data = reply.json()
        if not isinstance(data, dict):
            raise ProtocolError("Unexpected /internal/progress answer.", detail=str(data)[:300],
                                node=self.name)
        self._internal = True
        return data

    async def _global_progress(self, preview: bool) -> dict[str, Any]:
        data = await self._get("/sdapi/v1/progress", params={"skip_current_image": str(not preview).lower()})
        return data if isinstance(data, dict) else {}

    async def _watch(self, task_id: str, endpoint: str, on_progress: ProgressCallback | None,
                     passes: tuple[str, ...] = ("",)) -> None:
        """Poll progress of our task while the request runs, and deliver a pending interrupt."""
        preview_id = -1
        while True:
            want_preview = on_progress is not None and self.previews  # the setting may change mid-run
            await asyncio.sleep(self.poll_interval)
            try:
                data = await self._internal_progress(task_id, preview_id=preview_id, preview=want_preview)
                if data is not None:
                    if not data.get("active"):
                        if data.get("queued") and on_progress is not None:
                            _notify(on_progress, Progress(fraction=0.0))
                        continue
                    if task_id in self._interrupt_wanted and task_id not in self._interrupt_sent:
                        await self._send_interrupt(task_id)
                    # The global state tells whether someone stopped the job that runs: ours.
                    state = (await self._global_progress(False)).get("state") or {}
                    self._note_foreign_stop(task_id, state)
                    if on_progress is None:
                        continue
                    preview_id = _int_or(data.get("id_live_preview"), preview_id)
                    step = _int_or(state.get("sampling_step"), None)
                    steps = _int_or(state.get("sampling_steps"), None)
                    phase, more = _pass_of(state, passes)
                    _notify(on_progress, Progress(
                        fraction=_fraction(data.get("progress")), step=step, steps=steps,
                        eta_seconds=_float_or(data.get("eta")),
                        preview=_data_url_bytes(data.get("live_preview")), phase=phase,
                        more_passes=more))
                    continue
                if on_progress is None and task_id not in self._interrupt_wanted:
                    continue
                # No per-task progress (--nowebui, SD.Next): the global one, while our request runs.
                glob = await self._global_progress(want_preview)
                state = glob.get("state") or {}
                if not self._runs_ours(state, endpoint, task_id):
                    continue
                self._note_foreign_stop(task_id, state)
                if task_id in self._interrupt_wanted and task_id not in self._interrupt_sent:
                    await self._send_interrupt(task_id)
                if on_progress is not None:
                    raw = _float_or(glob.get("progress")) or 0.0
                    image = glob.get("current_image")
                    phase, more = _pass_of(state, passes)
                    _notify(on_progress, Progress(
                        phase=phase, more_passes=more,
                        fraction=max(0.0, min(1.0, raw - 0.01)) if raw else 0.0,
                        step=_int_or(state.get("sampling_step"), None),
                        steps=_int_or(state.get("sampling_steps"), None),
                        eta_seconds=_float_or(glob.get("eta_relative")),
                        preview=_b64_bytes(image) if isinstance(image, str) else None))
            except BackendError as exc:  # progress is best effort; the generation call reports failures
                log.debug("%s: progress poll failed: %s (%s)", self.name, exc, exc.detail)

    def _note_foreign_stop(self, task_id: str, state: dict[str, Any]) -> None:
        """Remember when our running task was interrupted or skipped by someone else: A1111
        still answers 200 with what it had, which must not pass for a finished image."""
        if task_id in self._interrupt_wanted or task_id in self._interrupt_sent:
            return  # our own stop
        for flag in ("interrupted", "skipped"):
            if state.get(flag) is True:
                self._stopped_by_others.setdefault(task_id, flag)

    async def _learn_internal(self, task_id: str) -> None:
        """Ask /internal/progress once, so `_internal` says whether this server has task ids."""
        try:
            await self._internal_progress(task_id)
        except BackendError as exc:
            log.debug("%s: /internal/progress not usable: %s", self.name, exc)

    async def _running_job(self) -> _RunningJob | None:
        """The job the server runs now, from the global /progress (None when idle or unknown)."""
        try:
            state = (await self._global_progress(False)).get("state") or {}
        except BackendError as exc:
            log.debug("%s: could not read /progress before a request: %s", self.name, exc)
            return None
        return _RunningJob.of(state)

    def _runs_ours(self, state: dict[str, Any], endpoint: str, task_id: str) -> bool:
        """Without task ids, the running job is taken for ours only when: it is an API job of our
        endpoint, just one request of ours to that endpoint is open, and it is not the job that
        was already running when we sent ours (someone else's, e.g. another app's)."""
        running = _RunningJob.of(state)
        if running is None:
            self._before.pop(task_id, None)  # the server went idle: the earlier job is over
            return False
        before = self._before.get(task_id)
        if before is not None:
            if before.continues_as(running):
                self._before[task_id] = running  # how far it got: a new job starts lower
                return False
            self._before.pop(task_id, None)  # a different job now: the earlier one is over
        wanted = "scripts_txt2img" if endpoint == F.TXT2IMG else "scripts_img2img"
        ours = [e for e in self._in_flight.values() if e == endpoint]
        return running.job in ("", wanted) and len(ours) == 1

    def _start_reaper(self, task_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._reap(task_id), name=f"interrupt {task_id}")
        self._reapers.add(task)
        task.add_done_callback(self._reapers.discard)

    async def _reap(self, task_id: str) -> None:
        """After the caller gave up on a queued task: interrupt it once it runs, or see it gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        # A task the server never heard of (the request was lost on the way) is not waited for long.
        unknown_until = loop.time() + 5.0
        try:
            while loop.time() < deadline:
                data = await self._internal_progress(task_id)
                if data is None or data.get("completed"):
                    return
                if data.get("active"):
                    await self._send_interrupt(task_id)
                    return
                if not data.get("queued") and loop.time() > unknown_until:
                    return
                await asyncio.sleep(self.poll_interval)
        except BackendError as exc:
            log.warning("%s: could not stop abandoned task %s: %s (%s)", self.name, task_id, exc, exc.detail)
        finally:
            self._interrupt_wanted.discard(task_id)
            self._interrupt_sent.discard(task_id)

    async def _send_interrupt(self, task_id: str) -> None:
        self._interrupt_sent.add(task_id)
        self._check(await self._post("/sdapi/v1/interrupt", None))
        log.info("%s: interrupted task %s", self.name, task_id)

    async def interrupt(self, task_id: str) -> None:
        """Stop our task if it runs now, or as soon as it starts; never someone else's job."""
        endpoint = self._in_flight.get(task_id)
        if endpoint is None:
            return  # not running through this client: nothing of ours to stop
        self._interrupt_wanted.add(task_id)
        if endpoint == F.EXTRAS_SINGLE:
            return  # extras cannot be interrupted; the result is dropped when it arrives
        await self._if_ours(task_id, endpoint, self._send_interrupt)

    async def skip(self, task_id: str) -> None:
        """Skip the current batch iteration of our task (if it is the one running)."""
        endpoint = self._in_flight.get(task_id)
        if endpoint is None:
            return

        async def send(_: str) -> None:
            self._check(await self._post("/sdapi/v1/skip", None))

        await self._if_ours(task_id, endpoint, send)

    async def _if_ours(self, task_id: str, endpoint: str, action: Callable[[str], Awaitable[None]]) -> None:
        data = await self._internal_progress(task_id)
        if data is not None:
            if data.get("active"):
                await action(task_id)
            return  # queued: the progress watcher sends the interrupt when our task starts
        state = (await self._global_progress(False)).get("state") or {}
        if self._runs_ours(state, endpoint, task_id):
            await action(task_id)

    @property
    def stopping(self) -> int:
        """Requests of ours still being stopped on the server (queued there, to interrupt)."""
        return len(self._reapers)

    async def finish_stops(self, timeout: float) -> int:
        """Wait up to *timeout* s for our abandoned requests to be interrupted; returns how many
        are left (cancelled here: they may still run on the server)."""
        if self._reapers and timeout > 0:
            await asyncio.wait(set(self._reapers), timeout=timeout)
        left = list(self._reapers)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
            if timeout > 0:
                log.warning("%s: %d request(s) of ours could not be stopped within %g s",
                            self.name, len(left), timeout)
        return len(left)

    async def aclose(self) -> None:
        # Closing does not wait: a caller that must not leave requests of ours running on
        # the server (a CLI stopped with Ctrl+C) calls finish_stops() first, with its bound.
        await self.finish_stops(0)
        await self._http.aclose()

    async def __aenter__(self) -> A1111Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"A1111Backend({self.url!r}, kind={self.kind.value})"


# ----- helpers -----

@dataclass(frozen=True)
class _RunningJob:
    """A job as the global /progress shows it: its start stamp (whole seconds), its name, and how
    far it got. Jobs have no ids there, so a job is "the same" while stamp and name stay and it
    never goes backwards (a new job restarts at batch 0, step 0)."""

    stamp: str
    job: str
    position: tuple[int, int]  # (job_no, sampling_step)

    @classmethod
    def of(cls, state: dict[str, Any]) -> _RunningJob | None:
        if _int_or(state.get("job_count"), 0) == 0:
            return None
        return cls(str(state.get("job_timestamp") or ""), str(state.get("job") or ""),
                   (_int_or(state.get("job_no"), 0) or 0, _int_or(state.get("sampling_step"), 0) or 0))

    def continues_as(self, later: _RunningJob) -> bool:
        return (later.stamp, later.job) == (self.stamp, self.job) and later.position >= self.position

async def _all(*calls: Awaitable[Any]) -> list[Any]:
    """Run calls together; on the first failure cancel the rest and raise that failure as is
    (not wrapped in an ExceptionGroup, so callers keep catching typed BackendErrors).

    Not a TaskGroup: on Python 3.11 a TaskGroup drops a cancel of its caller that arrives while
    it cleans up after a failed call, so a stopped probe carried on as if never stopped."""
    tasks = [asyncio.ensure_future(_await(call)) for call in calls]
    for task in tasks:
        task.add_done_callback(_retrieve)  # a task left behind by a cancel never logs "never retrieved"
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in tasks if t in done and not t.cancelled() and t.exception() is not None]
        if failed:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)  # a cancel of ours arriving here propagates from here
            errors = [t.exception() for t in failed]
            typed = [e for e in errors if isinstance(e, BackendError)]
            raise (typed[0] if typed else errors[0]) from None
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    return [task.result() for task in tasks]


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _await(call: Awaitable[Any]) -> Any:
    return await call

def _items(data: Any) -> list[dict[str, Any]]:
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _strip_hash(title: str) -> str:
    head, sep, tail = title.rpartition(" [")
    return head if sep and tail.endswith("]") else title


def _parse_info(raw: Any, url: str, endpoint: str, node: str) -> dict[str, Any]:
    """`info` is a JSON string inside the JSON answer; parse it a second time."""
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        info = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"The server at {url} sent job details that are not valid JSON.",
                            detail=f"{endpoint} info: {exc}; {str(raw)[:200]!r}", node=node) from exc
    return info if isinstance(info, dict) else {}


def _ran_with(info: dict[str, Any]) -> RanWith:
    """What the job ran with, from `info` (A1111 replaces what it does not know silently)."""
    extra = info.get("extra_generation_params")
    schedule = extra.get("Schedule type") if isinstance(extra, dict) else None

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    return RanWith(checkpoint=text(info.get("sd_model_name")),
                   model_hash=text(info.get("sd_model_hash")),
                   sampler=text(info.get("sampler_name")), scheduler=text(schedule))


def _hires_size(width: int, height: int, scale: float, rx: int, ry: int) -> tuple[int, int]:
    """The hires output size: A1111's target (`calculate_target_resolution`), floored to a
    multiple of 8 because the second pass runs on a latent an eighth of that size
    (512 at scale 1.3: target 665, image 664)."""
    if rx <= 0 and ry <= 0:
        w, h = int(width * scale), int(height * scale)
    elif rx <= 0:
        w, h = ry * width // height, ry
    elif ry <= 0:
        w, h = rx, rx * height // width
    else:
        w, h = rx, ry
    return w // 8 * 8, h // 8 * 8


def _input_size(data: bytes, what: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RequestRejected(f"The image given to {what} could not be read as PNG, JPEG or WEBP.",
                              fields=("image",), detail=repr(exc)) from exc


def _infotext_of(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as img:
            text = img.info.get("parameters")
    except (UnidentifiedImageError, OSError, ValueError):
        return ""
    return text if isinstance(text, str) else ""


def _notify(callback: ProgressCallback, progress: Progress) -> None:
    try:
        callback(progress)
    except Exception:  # a broken listener must not fail the job it listens to
        log.exception("progress callback failed")


def _fraction(value: Any) -> float:
    number = _float_or(value)
    return 0.0 if number is None else max(0.0, min(1.0, number))


def _float_or(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _pass_of(state: dict[str, Any], passes: tuple[str, ...]) -> tuple[str, bool]:
    """Which sampling pass the server's job counter is in (`job_no` counts every pass of every
    image), and whether another follows for the same image."""
    job_no = _int_or(state.get("job_no"), None)
    if len(passes) < 2 or job_no is None or job_no < 0 or _int_or(state.get("job_count"), 0) <= 0:
        return passes[0], False
    index = job_no % len(passes)
    return passes[index], index < len(passes) - 1


def _int_or(value: Any, default: Any) -> Any:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _b64_bytes(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) or None
    except (binascii.Error, ValueError):
        return None


def _data_url_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    return _b64_bytes(value.partition(",")[2] if value.startswith("data:") else value)
