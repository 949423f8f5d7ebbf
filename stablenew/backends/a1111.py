"""The AUTOMATIC1111 / Forge / SD.Next WebUI client (`/sdapi/v1`), one `Backend` implementation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from stablenew.backends import a1111_fields as F
from stablenew.backends.a1111_controlnet import add_references, probe_controlnet
from stablenew.backends.a1111_families import forge_modules, with_loaded_family
from stablenew.backends.a1111_names import ServerNames
from stablenew.backends.a1111_payloads import (
    adetailer_payload,
    b64,
    img2img_payload,
    txt2img_payload,
    upscale_payload,
)
from stablenew.backends.a1111_progress import OurTasks, RunningJob, global_progress, notify, task_progress
from stablenew.backends.a1111_replies import (
    decode_image,
    infotext_of,
    input_size,
    int_or,
    items_of,
    raise_for_status,
    read_answer,
    strip_hash,
)
from stablenew.backends.a1111_truth import (
    Expectation,
    compare,
    infotext_params,
    ran_with,
    same_checkpoint,
    txt2img_expectation,
    upscale_warnings,
)
from stablenew.backends.errors import (
    BackendError,
    JobInterrupted,
    ProtocolError,
    ServerError,
    ServerTimeout,
)
from stablenew.backends.http import (
    DEFAULT_MAX_BODY,
    LISTING_MAX_BODY,
    SHORT_TIMEOUT,
    HttpClient,
    HttpReply,
    normalise_url,
)
from stablenew.backends.together import together
from stablenew.backends.types import (
    ADetailerJob,
    BackendKind,
    Capabilities,
    GeneratedImage,
    Img2ImgJob,
    JobResult,
    Progress,
    ProgressCallback,
    Txt2ImgJob,
    UpscaleJob,
)

log = logging.getLogger(__name__)

_WEBUI_KINDS = (BackendKind.a1111, BackendKind.forge, BackendKind.sdnext)
#: Job answers up to this size are parsed and checked on the event loop (well under 0.5 ms);
#: larger ones (a 512x512 SD image is ~0.5 MB of base64) in a worker thread.
INLINE_BODY_BYTES = 64 * 1024


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
        #: Our requests open at the server: where they went, their stops, whose job runs.
        self._ours = OurTasks()
        self._capabilities: Capabilities | None = None
        #: Its models and LoRAs, which each job is checked against (see a1111_names).
        self._names = ServerNames(self.name, loras=self.loras, checkpoints=self.checkpoints,
                                  post=lambda path: self._post(path, None, timeout=self.timeout))
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
        sdnext, forge = await together(
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
        raise_for_status(reply, self.url, self.name, auth=bool(self._auth),
                         capabilities=self._capabilities)

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
        results = await together(
            self.options(), self.checkpoints(), self.samplers(), self.schedulers(), self.upscalers(),
            self.loras(), self.embeddings(), self.adetailer_models(), self.memory(), self._version(kind),
            probe_controlnet(self._get), forge_modules(self._get, kind), self._learn_internal())
        (options, checkpoints, samplers, schedulers, upscalers, loras, embeddings, ad, memory,
         version, controlnet, modules, _) = results
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
            # The ControlNet extension's models, so only nodes that have a fitting one get a
            # job with reference images (none listed: the extension is absent or has none).
            controlnet_models=controlnet.models if controlnet is not None else (), modules=modules,
            has_controlnet=controlnet is not None,
            current_checkpoint=strip_hash(current) if isinstance(current, str) else "")
        self._capabilities = caps
        self._names.loras.known(loras)
        self._names.checkpoints.known(checkpoints)
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
        return tuple(strip_hash(str(m.get("title", ""))) for m in items_of(data) if m.get("title"))

    async def samplers(self) -> tuple[str, ...]:
        return tuple(str(m["name"]) for m in items_of(await self._get("/sdapi/v1/samplers")) if m.get("name"))

    async def schedulers(self) -> tuple[str, ...]:
        data = await self._get("/sdapi/v1/schedulers", optional=True)
        return tuple(str(m.get("label") or m.get("name")) for m in items_of(data)
                     if m.get("label") or m.get("name"))

    async def upscalers(self) -> tuple[str, ...]:
        """Upscaler names including the latent hires modes ("Latent", "Latent (bicubic)", …)."""
        regular, latent = await together(self._get("/sdapi/v1/upscalers"),
                                               self._get("/sdapi/v1/latent-upscale-modes", optional=True))
        names = [str(m["name"]) for m in items_of(latent) if m.get("name")]
        names += [str(m["name"]) for m in items_of(regular) if m.get("name")]
        return tuple(dict.fromkeys(names))

    async def loras(self) -> tuple[str, ...]:
        data = await self._get("/sdapi/v1/loras", optional=True)
        # `<lora:X>` finds a LoRA by its name (the file stem) or its alias: both are listed.
        names = (m.get(key) for m in items_of(data) if m.get("name") for key in ("name", "alias"))
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

    async def refresh_lists(self) -> None:
        """Have the server read its model folders again; each rescan waits for a running job,
        and one this server lacks (404: an older WebUI, SD.Next) is skipped."""
        for path in F.RESCANS:
            reply = await self._post(path, None, timeout=self.timeout)
            if reply.status != 404:
                self._check(reply)

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
        s = await with_loaded_family(job.sampling, self._get, kind, job.references)
        job = replace(job, sampling=s)
        expect = txt2img_expectation(job, kind)
        # With hires fix each image is two jobs on the server: the first pass, then the hires one.
        passes = ("", "hires") if job.hires is not None else ("",)
        body = txt2img_payload(job, kind)
        checked = await add_references(body, job.references, s, self._get, self.name)
        return checked(await self._generate(F.TXT2IMG, body, job.task_id, on_progress, expect, passes))

    async def img2img(self, job: Img2ImgJob, on_progress: ProgressCallback | None = None) -> JobResult:
        kind = await self.resolve_kind()
        s = await with_loaded_family(job.sampling, self._get, kind, job.references)
        job = replace(job, sampling=s)
        expect = Expectation(s, 1, (s.width, s.height))
        body = img2img_payload(job, kind)
        checked = await add_references(body, job.references, s, self._get, self.name)
        return checked(await self._generate(F.IMG2IMG, body, job.task_id, on_progress, expect))

    async def adetailer(self, job: ADetailerJob, on_progress: ProgressCallback | None = None) -> JobResult:
        kind = await self.resolve_kind()
        job = replace(job, sampling=await with_loaded_family(job.sampling, self._get, kind))
        size = input_size(job.image, "ADetailer")
        expect = Expectation(job.sampling, 1, size, adetailer=job.passes)
        payload = adetailer_payload(job, kind, size)
        return await self._generate(F.IMG2IMG, payload, job.task_id, on_progress, expect)

    async def upscale(self, job: UpscaleJob, on_progress: ProgressCallback | None = None) -> JobResult:
        source_size = input_size(job.image, "the upscaler")
        self._ours.in_flight[job.task_id] = F.EXTRAS_SINGLE
        try:
            reply = await self._post(F.EXTRAS_SINGLE, upscale_payload(job), timeout=self.timeout,
                                     max_body=self.max_body)
        finally:
            self._ours.in_flight.pop(job.task_id, None)
        interrupted = job.task_id in self._ours.interrupt_wanted
        self._ours.interrupt_wanted.discard(job.task_id)
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
        source = infotext_of(job.image)
        seed = int_or(infotext_params(source).get("Seed"), 0)
        warnings = upscale_warnings(job, source_size, size)
        if on_progress is not None:
            notify(on_progress, Progress(fraction=1.0))
        return JobResult(images=(GeneratedImage(encoded, seed, source),),
                         info={"html_info": data.get("html_info", "")}, warnings=tuple(warnings))

    async def _generate(self, endpoint: str, payload: dict[str, Any], task_id: str,
                        on_progress: ProgressCallback | None, expect: Expectation,
                        passes: tuple[str, ...] = ("",)) -> JobResult:
        await self._names.check(expect, payload)
        await self._learn_internal()  # once per client: are there per-task ids?
        if self._internal is not True:  # no task ids: note whose job runs now
            self._ours.before[task_id] = await self._running_job()
        self._ours.in_flight[task_id] = endpoint
        poller = asyncio.create_task(self._watch(task_id, endpoint, on_progress, passes),
                                     name=f"progress {task_id}")
        try:
            reply = await self._post(endpoint, payload, timeout=self.timeout, max_body=self.max_body)
        except (asyncio.CancelledError, ServerTimeout):
            # A WebUI runs a request to the end even when the client hangs up: since nobody will
            # take this result, stop our task now or as soon as it leaves the server's queue.
            if task_id not in self._ours.interrupt_sent:
                self._ours.interrupt_wanted.add(task_id)
                self._start_reaper(task_id)
            raise
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            self._ours.in_flight.pop(task_id, None)
            self._ours.before.pop(task_id, None)
            stopped = self._ours.stopped_by_others.pop(task_id, None)
        interrupted = task_id in self._ours.interrupt_wanted
        self._ours.interrupt_wanted.discard(task_id)
        self._ours.interrupt_sent.discard(task_id)
        if interrupted:
            # Partial images (or an error caused by the stop) are not a result.
            raise JobInterrupted("The job was stopped before it finished.",
                                 detail=f"task {task_id}: HTTP {reply.status}, partial result discarded",
                                 node=self.name)
        self._check(reply)
        # Parsing, base64 and the image check in one hop off the loop (each hop costs a thread
        # hand-off); an answer small enough to take less than that is read right here.
        if len(reply.body) <= INLINE_BODY_BYTES:
            info, images, sizes, infotexts = read_answer(reply, endpoint, self.url, self.name)
        else:
            info, images, sizes, infotexts = await asyncio.to_thread(
                read_answer, reply, endpoint, self.url, self.name)
        if isinstance(info.get("version"), str) and info["version"]:
            self._version_seen = info["version"]
        if on_progress is not None:
            steps = expect.sampling.steps
            notify(on_progress, Progress(fraction=1.0, step=steps, steps=steps, eta_seconds=0.0))
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
                         ran=ran_with(info), incomplete=incomplete)

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
                            notify(on_progress, Progress(fraction=0.0))
                        continue
                    if task_id in self._ours.interrupt_wanted and task_id not in self._ours.interrupt_sent:
                        await self._send_interrupt(task_id)
                    # The global state tells whether someone stopped the job that runs: ours.
                    state = (await self._global_progress(False)).get("state") or {}
                    self._ours.note_foreign_stop(task_id, state)
                    if on_progress is None:
                        continue
                    preview_id = int_or(data.get("id_live_preview"), preview_id)
                    notify(on_progress, task_progress(data, state, passes))
                    continue
                if on_progress is None and task_id not in self._ours.interrupt_wanted:
                    continue
                # No per-task progress (--nowebui, SD.Next): the global one, while our request runs.
                glob = await self._global_progress(want_preview)
                state = glob.get("state") or {}
                if not self._ours.runs_ours(state, endpoint, task_id):
                    continue
                self._ours.note_foreign_stop(task_id, state)
                if task_id in self._ours.interrupt_wanted and task_id not in self._ours.interrupt_sent:
                    await self._send_interrupt(task_id)
                if on_progress is not None:
                    notify(on_progress, global_progress(glob, passes))
            except BackendError as exc:  # progress is best effort; the generation call reports failures
                log.debug("%s: progress poll failed: %s (%s)", self.name, exc, exc.detail)

    async def _learn_internal(self) -> None:
        """Ask /internal/progress once, so `_internal` says whether this server has task ids
        (in the probe, beside its other requests: a first job then need not ask first)."""
        if self._internal is not None or self.kind == BackendKind.sdnext:
            return
        try:
            await self._internal_progress("stablenew-probe")
        except BackendError as exc:
            log.debug("%s: /internal/progress not usable: %s", self.name, exc)

    async def _running_job(self) -> RunningJob | None:
        """The job the server runs now, from the global /progress (None when idle or unknown)."""
        try:
            state = (await self._global_progress(False)).get("state") or {}
        except BackendError as exc:
            log.debug("%s: could not read /progress before a request: %s", self.name, exc)
            return None
        return RunningJob.of(state)

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
            self._ours.interrupt_wanted.discard(task_id)
            self._ours.interrupt_sent.discard(task_id)

    async def _send_interrupt(self, task_id: str) -> None:
        self._ours.interrupt_sent.add(task_id)
        self._check(await self._post("/sdapi/v1/interrupt", None))
        log.info("%s: interrupted task %s", self.name, task_id)

    async def interrupt(self, task_id: str) -> None:
        """Stop our task if it runs now, or as soon as it starts; never someone else's job."""
        endpoint = self._ours.in_flight.get(task_id)
        if endpoint is None:
            return  # not running through this client: nothing of ours to stop
        self._ours.interrupt_wanted.add(task_id)
        if endpoint == F.EXTRAS_SINGLE:
            return  # extras cannot be interrupted; the result is dropped when it arrives
        await self._if_ours(task_id, endpoint, self._send_interrupt)

    async def skip(self, task_id: str) -> None:
        """Skip the current batch iteration of our task (if it is the one running)."""
        endpoint = self._ours.in_flight.get(task_id)
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
        if self._ours.runs_ours(state, endpoint, task_id):
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
