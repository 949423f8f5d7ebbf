"""The ComfyUI client: one WebSocket per backend for events, HTTP for everything else.

Flow of one job: build the graph from templates, check it against the node's /object_info,
upload inputs, make sure our socket is connected, POST /prompt with our client_id and our own
prompt_id, follow the events until `executing{node: null}` for our prompt, then read
/history/{id} (retrying briefly, since history can lag) and fetch the images through /view.
A dropped socket is reconnected with the same clientId; while events are missing, the job
watches /history and /queue so no result is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stablenew.backends.comfyui_cancel import ComfyUICancel
from stablenew.backends.comfyui_messages import (
    ProgressTracker,
    execution_error_to_error,
    history_outcome,
    post_prompt_error,
)
from stablenew.backends.comfyui_names import (
    a1111_sampler_names,
    a1111_scheduler_names,
    a1111_upscaler_names,
)
from stablenew.backends.comfyui_references import IP_ADAPTER_APPLY, IP_ADAPTER_LOADER
from stablenew.backends.comfyui_socket import ComfyUIEvents, _Watch
from stablenew.backends.comfyui_workflows import (
    NodeCatalog,
    Workflow,
    WorkflowBuilder,
    check_graph,
    load_user_templates,
    part_classes,
)
from stablenew.backends.errors import (
    BackendError,
    JobInterrupted,
    MissingResource,
    ProtocolError,
    ServerError,
    ServerTimeout,
)
from stablenew.backends.http import DEFAULT_MAX_BODY, LISTING_MAX_BODY, HttpClient, HttpReply, printable
from stablenew.backends.references import KINDS
from stablenew.backends.types import (
    ADetailerJob,
    BackendKind,
    Capabilities,
    GeneratedImage,
    Img2ImgJob,
    JobResult,
    ProgressCallback,
    RanWith,
    Txt2ImgJob,
    UpscaleJob,
)

log = logging.getLogger(__name__)

#: Classes probed one by one for the capability lists (cheap, unlike the 745 KB /object_info).
_PROBED_CLASSES = ("CheckpointLoaderSimple", "KSampler", "UpscaleModelLoader", "LoraLoader",
                   "FaceDetailer", "UltralyticsDetectorProvider",
                   # What the builder looks at to choose a family's loaders and files.
                   "UNETLoader", "UnetLoaderGGUF", "DualCLIPLoader", "TripleCLIPLoader", "VAELoader",
                   "EmptySD3LatentImage", "ControlNetLoader", IP_ADAPTER_LOADER)
#: Read only for a job with reference images: the preprocessors a kind can use.
_REFERENCE_CLASSES = frozenset({IP_ADAPTER_APPLY, *(c for kind in KINDS.values()
                                                    for c in kind.comfy_preprocessors)})


def _canonical_uuid(text: str) -> str | None:
    try:
        value = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
    return str(value) if str(value) == text.lower() else None


class ComfyUIBackend(ComfyUIEvents, ComfyUICancel):
    """A ComfyUI node driven over HTTP + WebSocket; implements the `Backend` protocol."""

    #: Without events for this long, a running job checks /history and /queue itself.
    idle_check_s = 2.0
    #: How long to keep reading /history after the done marker before giving up.
    history_wait_s = 5.0

    #: Seconds for one HTTP call (listings, history, queue, uploads, one image).
    short_timeout = 30.0

    def __init__(self, url: str, *, name: str | None = None, auth: tuple[str, str] | None = None,
                 timeout: float = 600.0, previews: bool = False, save_on_server: bool = False,
                 workflows_dir: Path | None = None) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.name = name or parts.netloc or self.url
        self.timeout = timeout
        self.previews = previews
        self.save_on_server = save_on_server
        self._auth = auth
        self._http = HttpClient(self.url, auth=auth, node=self.name)
        scheme = "wss" if parts.scheme == "https" else "ws"
        self._client_id = uuid.uuid4().hex
        self._ws_url = f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={self._client_id}"
        self._ws_task: asyncio.Task | None = None
        self._ws_ready = asyncio.Event()
        self._ws_failure: BaseException | None = None
        self._closed = False
        self._watches: dict[str, _Watch] = {}
        self._running_prompt: str | None = None  # ours, from execution_start
        self._task_prompts: dict[str, str] = {}
        self._cancelled_tasks: set[str] = set()
        self._object_info: dict[str, dict] = {}
        self._absent: set[str] = set()  # classes the node answered {} for
        self._embeddings: tuple[str, ...] | None = None
        self._uploaded: set[str] = set()
        self._jobs_api: bool | None = None  # unknown until tried
        self._workflows_dir = workflows_dir
        self._capabilities: Capabilities | None = None
        self.reconnects = 0
        self._background: set[asyncio.Task] = set()
        # New images (txt2img) sent ahead prepare concurrently; this FIFO lock makes them reach
        # the node's queue in the order they were asked for (ComfyUI runs it in posting order).
        # Later stages of a started image do not queue behind it: they may go first.
        self._posting = asyncio.Lock()

    @property
    def kind(self) -> BackendKind:
        return BackendKind.comfyui

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def capabilities(self) -> Capabilities | None:
        """What the last `probe()` found (None before the first probe)."""
        return self._capabilities

    # ------------------------------------------------------------------ HTTP helpers
    async def _request(self, method: str, path: str, *, json: Any = None,
                       params: dict[str, Any] | None = None, max_body: int = LISTING_MAX_BODY,
                       **form: Any) -> HttpReply:
        """One call through the shared HTTP layer (deadline, size cap, typed errors)."""
        return await self._http.request(method, path, json_body=json, params=params,
                                        timeout=self.short_timeout, max_body=max_body,
                                        files=form.get("files"), data=form.get("data"))

    async def _get_json(self, path: str, **kwargs: Any) -> Any:
        resp = await self._request("GET", path, **kwargs)
        self._check_status(resp, path)
        return self._json(resp, path)

    def _json(self, resp: HttpReply, path: str) -> Any:
        try:
            return resp.json()
        except ProtocolError as exc:
            raise ProtocolError(f"Node '{self.name}' answered {path} with something that is not JSON; "
                                "is this a ComfyUI server?", node=self.name, detail=exc.detail) from None

    def _check_status(self, resp: HttpReply, path: str) -> None:
        if resp.status < 400:
            return
        if resp.status in (401, 403):
            raise post_prompt_error(resp.status, resp.body, self.name)
        text = printable(resp.body[:1000].decode("utf-8", "replace"), 1000)
        if resp.status >= 500:
            raise ServerError(f"Node '{self.name}' failed answering {path} (HTTP {resp.status}).",
                              node=self.name, detail=text)
        raise ProtocolError(f"Node '{self.name}' answered {path} with HTTP {resp.status}; is this a "
                            "ComfyUI server?", node=self.name, detail=text)

    # ------------------------------------------------------------------ probing
    async def ping(self) -> None:
        stats = await self._get_json("/system_stats")
        if not isinstance(stats, dict) or "system" not in stats:
            raise ProtocolError(f"Node '{self.name}' does not look like ComfyUI (no system stats).",
                                node=self.name, detail=str(stats)[:500])

    async def probe(self) -> Capabilities:
        stats = await self._get_json("/system_stats")
        if not isinstance(stats, dict) or "system" not in stats:
            raise ProtocolError(f"Node '{self.name}' does not look like ComfyUI (no system stats).",
                                node=self.name, detail=str(stats)[:500])
        # Class by class, not the whole /object_info: that is ~1 MB and slow to compute on
        # nodes with many custom nodes. We ask for every class our graphs can use.
        self._embeddings = None
        catalog = await self._catalog(self._known_classes(), refresh=True)
        devices = stats.get("devices") or [{}]
        dev = devices[0] if isinstance(devices[0], dict) else {}
        # A node started with --cpu reports its system RAM as "vram": it has no graphics card,
        # and planning it as a 24 GB GPU would promise a speed it never reaches.
        gpu = str(dev.get("type", "")).lower() != "cpu" and str(dev.get("name", "")).lower() != "cpu"
        self._capabilities = Capabilities(
            kind=BackendKind.comfyui,
            version=str(stats["system"].get("comfyui_version", "")),
            device=str(dev.get("name", "")),
            vram_total=dev.get("vram_total") if gpu else None,
            vram_free=dev.get("vram_free") if gpu else None,
            has_gpu=gpu,
            # Flux and SD3.5 files in models/diffusion_models are models a job can name too.
            checkpoints=catalog.checkpoints + tuple(
                m for m in catalog.diffusion_models if m not in catalog.checkpoints),
            samplers=a1111_sampler_names(catalog.samplers),
            schedulers=a1111_scheduler_names(catalog.schedulers),
            upscalers=a1111_upscaler_names(catalog.upscale_models),
            loras=catalog.loras,
            embeddings=catalog.embeddings,
            adetailer_models=catalog.detector_models,
            node_classes=frozenset(catalog.object_info),
            controlnet_models=catalog.combo("ControlNetLoader", "control_net_name"),
        )
        return self._capabilities

    def _known_classes(self) -> set[str]:
        """Every node class a built-in part or one of the user's templates uses."""
        classes = set(_PROBED_CLASSES) | part_classes()
        try:
            for template in load_user_templates(self._user_templates_dir()).values():
                classes |= {n["class_type"] for n in template.nodes.values()}
        except BackendError as exc:  # a broken user template must not hide the node
            log.warning("user workflow templates ignored while probing %s: %s", self.name, exc.detail)
        return classes

    def _user_templates_dir(self) -> Path:
        if self._workflows_dir is not None:
            return self._workflows_dir
        from stablenew.storage.paths import AppPaths

        return AppPaths.default().config_dir / "workflows"

    async def _class_info(self, classes: set[str], *, refresh: bool = False) -> None:
        wanted = [c for c in classes if refresh or (c not in self._object_info and c not in self._absent)]

        async def one(cls: str) -> None:
            data = await self._get_json(f"/object_info/{cls}")
            if isinstance(data, dict) and cls in data:
                self._object_info[cls] = data[cls]
                self._absent.discard(cls)
            else:
                self._object_info.pop(cls, None)  # 200 {} = not installed
                self._absent.add(cls)

        await asyncio.gather(*(one(c) for c in wanted))

    async def _catalog(self, classes: set[str] | None = None, *, refresh: bool = False) -> NodeCatalog:
        await self._class_info(set(classes or ()) | set(_PROBED_CLASSES), refresh=refresh)
        if self._embeddings is None:
            try:
                emb = await self._get_json("/embeddings")
                self._embeddings = tuple(str(e) for e in emb) if isinstance(emb, list) else ()
            except ProtocolError:
                self._embeddings = ()
        # Classes we asked about but which are absent stay absent in the catalog.
        return NodeCatalog(self.name, dict(self._object_info), self._embeddings)

    async def _builder(self, extra: frozenset[str] = frozenset()) -> WorkflowBuilder:
        catalog = await self._catalog(set(extra))
        return WorkflowBuilder(catalog, save_on_server=self.save_on_server,
                               user_templates=load_user_templates(self._user_templates_dir()))

    async def _checked(self, wf: Workflow) -> None:
        """Check the graph against the node; re-read stale classes once before blaming the node."""
        graph = wf.nodes
        classes = {n["class_type"] for n in graph.values()}
        catalog = await self._catalog(classes)
        try:
            check_graph(graph, catalog)
        except MissingResource:
            catalog = await self._catalog(classes, refresh=True)  # models may have been added
            check_graph(graph, catalog)

    async def _build(self, make, extra: frozenset[str] = frozenset()) -> Workflow:
        builder = await self._builder(extra)
        try:
            wf = make(builder)
        except MissingResource:
            self._object_info.clear()
            self._absent.clear()
            self._embeddings = None
            builder = await self._builder(extra)
            wf = make(builder)
        await self._checked(wf)
        return wf

    # ------------------------------------------------------------------ jobs
    async def txt2img(self, job: Txt2ImgJob, on_progress: ProgressCallback | None = None) -> JobResult:
        return await self._run_batch(job.task_id, job.sampling.seed, job.batch_size,
                                     lambda b, seed: b.txt2img(replace(job, sampling=replace(
                                         job.sampling, seed=seed))), on_progress, in_order=True,
                                     extra=_REFERENCE_CLASSES if job.references else frozenset())

    async def img2img(self, job: Img2ImgJob, on_progress: ProgressCallback | None = None) -> JobResult:
        return await self._run_batch(job.task_id, job.sampling.seed, 1,
                                     lambda b, seed: b.img2img(job), on_progress,
                                     extra=_REFERENCE_CLASSES if job.references else frozenset())

    async def adetailer(self, job: ADetailerJob, on_progress: ProgressCallback | None = None) -> JobResult:
        return await self._run_batch(job.task_id, job.sampling.seed, 1,
                                     lambda b, seed: b.adetailer(job), on_progress)

    async def upscale(self, job: UpscaleJob, on_progress: ProgressCallback | None = None) -> JobResult:
        return await self._run_batch(job.task_id, 0, 1, lambda b, seed: b.upscale(job), on_progress)

    async def _run_batch(self, task_id: str, seed: int, count: int, make,
                         on_progress: ProgressCallback | None, *, in_order: bool = False,
                         extra: frozenset[str] = frozenset()) -> JobResult:
        """One prompt per image with seed, seed+1, … so every image is reproducible as A1111's are."""
        self._cancelled_tasks.discard(task_id)
        images: list[GeneratedImage] = []
        warnings: list[str] = []
        # The graphs as sent (API format), so a caller can keep them like ComfyUI's own PNG chunk.
        info: dict[str, Any] = {"prompt_ids": [], "prompts": []}
        checkpoint = ""
        loras: tuple[str, ...] = ()
        try:
            for i in range(max(1, count)):
                held = [in_order]
                if in_order:
                    await self._posting.acquire()

                def posted(held: list[bool] = held) -> None:
                    if held[0]:
                        held[0] = False
                        self._posting.release()

                try:
                    wf = await self._build(lambda b, s=seed + i: make(b, s), extra)
                    checkpoint = checkpoint or wf.checkpoint
                    loras = loras or wf.lora_files()
                    for w in wf.warnings:
                        if w not in warnings:
                            warnings.append(w)

                    def scaled(p, i=i):
                        if on_progress is not None:
                            on_progress(replace(p, fraction=(i + p.fraction) / max(1, count)))

                    data, pid = await self._run_prompt(wf, task_id, first=(i == 0), posted=posted,
                                                       on_progress=scaled if on_progress else None)
                finally:
                    posted()
                info["prompt_ids"].append(pid)
                info["prompts"].append(wf.to_api())
                images.extend(GeneratedImage(d, seed + i) for d in data)
        finally:
            self._task_prompts.pop(task_id, None)
            self._cancelled_tasks.discard(task_id)
        # ComfyUI reports no hash of its models; the files it loaded are what we can name.
        ran = RanWith(checkpoint=checkpoint, loras=loras) if checkpoint or loras else None
        return JobResult(images=tuple(images), info=info, warnings=tuple(warnings), ran=ran)

    async def _upload(self, wf: Workflow) -> None:
        for name, data in wf.uploads.items():
            if name in self._uploaded:
                continue
            sub, _, filename = name.rpartition("/")
            resp = await self._request("POST", "/upload/image",
                                       files={"image": (filename, data, "image/png")},
                                       data={"subfolder": sub, "type": "input", "overwrite": "true"})
            self._check_status(resp, "/upload/image")
            got = self._json(resp, "/upload/image")
            if not isinstance(got, dict):
                raise ProtocolError(f"Node '{self.name}' gave an unreadable upload answer.", node=self.name,
                                    detail=printable(str(got), 500))
            stored = f"{got.get('subfolder')}/{got.get('name')}" if got.get("subfolder") else got.get("name")
            if stored != name:
                raise ProtocolError(f"Node '{self.name}' stored the uploaded image as '{stored}' instead of "
                                    f"'{name}'.", node=self.name)
            self._uploaded.add(name)

    async def _new_prompt_id(self, task_id: str, first: bool) -> str:
        pid = _canonical_uuid(task_id) if first else None
        if pid is not None:
            # Duplicates are accepted and overwrite history; never reuse an id the node knows.
            seen = await self._get_json(f"/history/{pid}")
            if seen:
                pid = None
        return pid or str(uuid.uuid4())

    async def _run_prompt(self, wf: Workflow, task_id: str, *, first: bool,
                          on_progress: ProgressCallback | None,
                          posted=lambda: None) -> tuple[list[bytes], str]:
        if task_id in self._cancelled_tasks:
            raise JobInterrupted("The job was stopped before it started.", node=self.name)
        await self._upload(wf)
        await self._ensure_ws()
        pid = await self._new_prompt_id(task_id, first)
        graph = wf.to_api()
        watch = _Watch(pid)
        self._watches[pid] = watch
        self._task_prompts[task_id] = pid
        posting = False
        try:
            body: dict[str, Any] = {"prompt": graph, "client_id": self._client_id, "prompt_id": pid}
            if self.previews:
                body["extra_data"] = {"preview_method": "auto"}
            posting = True
            resp = await self._request("POST", "/prompt", json=body)
            if resp.status == 400 and wf.uploads and self._uploaded & set(wf.uploads):
                # Our record of uploads may be stale (the node's input folder was cleaned).
                self._uploaded -= set(wf.uploads)
                await self._upload(wf)
                resp = await self._request("POST", "/prompt", json=body)
            if resp.status != 200:
                error = post_prompt_error(resp.status, resp.body, self.name)
                if isinstance(error, MissingResource):
                    self._object_info.clear()  # our picture of the node was stale; re-read it next time
                    self._absent.clear()
                raise error
            answer = self._json(resp, "/prompt")
            if not isinstance(answer, dict):
                raise ProtocolError(f"Node '{self.name}' gave an unreadable answer to the workflow.",
                                    node=self.name, detail=printable(str(answer), 500))
            if answer.get("node_errors"):
                # 200 with node_errors: only part of the graph would run. Stop it and report.
                await self._cancel_prompt(pid)
                raise post_prompt_error(400, resp.body, self.name)
            posted()
            if task_id in self._cancelled_tasks:
                await self._cancel_prompt(pid)
            item = await self._follow(watch, graph, on_progress)
            posting = False
            return await self._fetch_images(item, wf.output_node), pid
        except asyncio.CancelledError:
            if posting:
                # Nobody will collect this prompt's result: take it off the node, in the
                # background since we are being cancelled.
                self._in_background(self._cancel_prompt(pid))
            raise
        finally:
            self._watches.pop(pid, None)

    async def _follow(self, watch: _Watch, graph: Mapping, on_progress: ProgressCallback | None) -> dict:
        """Wait for our prompt to end; returns its history entry or raises its error."""
        tracker = ProgressTracker(graph)
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self._cancel_prompt(watch.prompt_id)
                raise ServerTimeout(f"Node '{self.name}' did not finish the job within {self.timeout:.0f} s; "
                                    "it was stopped.", node=self.name)
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # lands as an event arrives, and the runner's cancel must never be lost.
                async with asyncio.timeout(min(self.idle_check_s, remaining)):
                    kind, data = await watch.events.get()
            except TimeoutError:
                item = await self._check_finished(watch)
                if item is not None:
                    return item
                continue
            if kind == "executing":
                if data.get("node") is None:
                    return await self._read_history(watch)
                tracker.executing(str(data["node"]))
            elif kind == "execution_cached":
                tracker.cached([str(n) for n in data.get("nodes") or []])
            elif kind == "progress":
                tracker.progress(str(data.get("node")) if data.get("node") is not None else None,
                                 float(data.get("value", 0)), float(data.get("max", 0) or 0))
            elif kind == "execution_error":
                watch.last_error = dict(data)
                continue
            elif kind == "preview":
                if on_progress is not None and self.previews:
                    on_progress(tracker.snapshot(preview=data))
                continue
            elif kind == "_resync":
                item = await self._check_finished(watch)
                if item is not None:
                    return item
                continue
            else:
                continue
            if on_progress is not None:
                on_progress(tracker.snapshot())

    async def _check_finished(self, watch: _Watch) -> dict | None:
        """Look for the end without events: in history (done), or gone from the queue (deleted)."""
        pid = watch.prompt_id
        hist = await self._get_json(f"/history/{pid}")
        if isinstance(hist, dict) and pid in hist:
            return self._outcome(watch, hist[pid])
        queue = await self._get_json("/queue")
        ids = {item[1] for key in ("queue_running", "queue_pending") for item in queue.get(key, [])}
        if pid in ids:
            return None
        hist = await self._get_json(f"/history/{pid}")  # it may have finished in between
        if isinstance(hist, dict) and pid in hist:
            return self._outcome(watch, hist[pid])
        if watch.cancel_requested:
            raise JobInterrupted(f"The job was removed from node '{self.name}' before it ran (cancelled).",
                                 node=self.name)
        # Gone without a trace: its queue was cleared by someone else, or ComfyUI restarted
        # (queue and history live in memory). Worth running again.
        raise ServerError(f"Node '{self.name}' lost the job (ComfyUI restarted or its queue was cleared); "
                          "it can be run again.", node=self.name,
                          detail=f"prompt {pid} in neither queue nor history")

    async def _read_history(self, watch: _Watch) -> dict:
        pid = watch.prompt_id
        delay = 0.01
        deadline = time.monotonic() + self.history_wait_s
        while True:
            hist = await self._get_json(f"/history/{pid}")
            if isinstance(hist, dict) and pid in hist:
                return self._outcome(watch, hist[pid])
            if time.monotonic() > deadline:
                raise ProtocolError(f"Node '{self.name}' said the job finished but kept no result for it.",
                                    node=self.name, detail=f"/history/{pid} stayed empty")
            await asyncio.sleep(delay)
            delay = min(0.25, delay * 2)

    def _outcome(self, watch: _Watch, item: dict) -> dict:
        error = history_outcome(item, self.name)
        if error is None:
            return item
        if isinstance(error, JobInterrupted):
            raise error
        if watch.last_error is not None:
            raise execution_error_to_error(watch.last_error, self.name)
        raise error

    async def _fetch_images(self, item: dict, output_node: str) -> list[bytes]:
        outputs = item.get("outputs") or {}
        images = (outputs.get(output_node) or {}).get("images") or []
        if not images:
            raise ProtocolError(f"Node '{self.name}' finished the job but returned no image.", node=self.name,
                                detail=json.dumps(outputs)[:1000])
        result = []
        for ref in images:
            resp = await self._request("GET", "/view", params={
                "filename": ref.get("filename", ""), "subfolder": ref.get("subfolder", ""),
                "type": ref.get("type", "output")}, max_body=DEFAULT_MAX_BODY)
            self._check_status(resp, "/view")
            if not resp.body:
                raise ProtocolError(f"Node '{self.name}' sent an empty image.", node=self.name)
            result.append(resp.body)
        return result

    # ------------------------------------------------------------------ closing
    @property
    def stopping(self) -> int:
        """Prompts of ours still being removed from the node's queue or interrupted."""
        return len(self._background)

    async def finish_stops(self, timeout: float) -> int:
        """Wait up to *timeout* s for our prompts to be removed or interrupted; returns how many
        are left unconfirmed."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)
        return len(self._background)

    async def aclose(self) -> None:
        await self.finish_stops(2.0)
        self._closed = True
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_task
            self._ws_task = None
        await self._http.aclose()

    async def __aenter__(self) -> ComfyUIBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
