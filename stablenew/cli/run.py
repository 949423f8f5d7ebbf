"""`stablenew run CONFIG.yaml`: run a pipeline headless, with a progress line and clean Ctrl+C.

Exit codes: 0 every image saved; 1 some or all images failed; 2 the config or the arguments
are wrong; 3 the server cannot be used; 130 stopped with Ctrl+C.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import FrameType

    from stablenew.backends.errors import BackendError
    from stablenew.backends.protocol import Backend
    from stablenew.backends.types import Capabilities
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.pipeline.events import RunEvent
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NO_SERVER = 3
EXIT_CANCELLED = 130


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="run a pipeline config without opening the window",
        description="Run the pipeline described by CONFIG.yaml on a server and save the images. "
                    "Defaults come from your StableNew settings.",
        epilog="Exit codes: 0 every image saved; 1 some or all images failed; 2 the config or "
               "the arguments are wrong, or the server lacks a model, upscaler or node the "
               "config needs (checked before anything starts); 3 the server cannot be used; "
               "130 stopped (Ctrl+C).")
    parser.add_argument("config", metavar="CONFIG.yaml", help="pipeline config file")
    parser.add_argument("--node", metavar="URL", help="server address (default: from settings)")
    parser.add_argument("--kind", choices=("a1111", "forge", "sdnext", "comfyui"),
                        help="server kind (default: detect it)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: from settings)")
    parser.add_argument("--count", type=int, metavar="N",
                        help="number of batches to make (overrides batch count in the config)")
    parser.add_argument("--user", metavar="U", help="user name for servers using --api-auth "
                        "(without --password-env, StableNew asks for the password)")
    parser.add_argument("--password-env", metavar="VAR",
                        help="take the password from this environment variable")
    # Refused with a reason: a password on the command line shows in `ps` to every user.
    parser.add_argument("--password", metavar="P", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import threading

    from stablenew.cli._common import collector_paused_for_startup
    from stablenew.pipeline.cancel import CancelToken

    token = CancelToken()
    presses = [0]

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        presses[0] += 1
        if presses[0] > 1:
            raise KeyboardInterrupt  # a second Ctrl+C: the user really wants out now
        print("\nStopping (Ctrl+C again to quit at once)…", file=sys.stderr, flush=True)
        token.cancel()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    try:
        with collector_paused_for_startup() as started:
            return asyncio.run(_main(args, token, started))
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


async def _main(args: argparse.Namespace, token: CancelToken, started: Callable[[], None]) -> int:
    import asyncio
    from pathlib import Path

    from pydantic import ValidationError

    from stablenew.backends.connect import connect
    from stablenew.backends.errors import AuthFailed, BackendError
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.documents import DocumentError
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import load_settings

    paths = AppPaths.default()
    settings, settings_problem = load_settings(paths)
    if settings_problem:
        print(settings_problem, file=sys.stderr)
    try:
        config = PipelineConfig.load(Path(args.config))
    except DocumentError as exc:
        print(f"The config cannot be used: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.count is not None:
        try:
            config = config.with_changes({"txt2img.batch_count": args.count})
        except ValidationError:
            print(f"--count {args.count}: the number of batches must be between 1 and 100.",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
    url = (args.node or settings.server_url).strip()
    if not url.startswith(("http://", "https://")):
        print(f"--node {url}: the server address must start with http:// or https://",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.password is not None:
        print("--password would show your password to every user of this computer (in `ps`). "
              "Use --password-env VARIABLE, or give --user alone and type the password when asked.",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    user = args.user if args.user is not None else settings.username
    password = _password(args, user, settings)
    if password is None:
        return EXIT_BAD_INPUT
    auth = (user, password) if user else None
    kind = args.kind or (None if settings.server_kind.value == "auto" else settings.server_kind.value)
    out = Path(args.out).expanduser() if args.out else settings.output_path(paths)  # noqa: ASYNC240 - no I/O: expands ~ from the environment

    async def reach() -> tuple[Backend, Capabilities]:
        backend = await connect(url, kind=kind, auth=auth, timeout=settings.request_timeout_s)
        try:
            # A stated --kind skips detection; the probe still fails early and clearly, and
            # says what the config needs that the server lacks.
            return backend, await backend.probe()
        except BaseException:
            await backend.aclose()
            raise

    # Ctrl+C while still reaching the server (it may take a while to time out) stops too.
    reaching = asyncio.ensure_future(reach())
    stop = asyncio.ensure_future(token.wait())
    await asyncio.wait((reaching, stop), return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not reaching.done():
        reaching.cancel()
        await asyncio.wait((reaching,), timeout=1)
        print("Stopped before the run began.", file=sys.stderr)
        return EXIT_CANCELLED
    try:
        backend, caps = reaching.result()
    except AuthFailed as exc:
        print(auth_words(url, sent=auth is not None), file=sys.stderr)
        if exc.detail:
            print(f"  ({exc.detail})", file=sys.stderr)
        return EXIT_NO_SERVER
    except BackendError as exc:
        return _no_server(exc)
    problem = cannot_run(config, caps, url)
    if problem is not None:
        await backend.aclose()
        print(f"The config cannot run on this server: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return await _run_job(args, token, paths, settings, config, backend, url, out, started)


async def _run_job(args: argparse.Namespace, token: CancelToken, paths: AppPaths,
                   settings: AppSettings, config: PipelineConfig, backend: Backend, url: str,
                   out: Path, started: Callable[[], None]) -> int:
    """The run itself: a job of the persistent queue, run at once (a killed run is recovered
    next time), with the machinery every way of running work shares (the prompt step the
    Settings ask for, the run log, the learning record of each image). *started* is called
    once the queue is ready: start-up is over then."""
    import asyncio

    from stablenew.cluster.job_run import run_as_job
    from stablenew.cluster.machinery import RunMachinery
    from stablenew.cluster.queue_store import QueueError, QueueStore
    from stablenew.pipeline.events import RunStatus
    from stablenew.pipeline.outputs import plan_run_folder

    progress = ProgressLine(sys.stderr, enabled=not args.quiet)
    machinery = RunMachinery.headless(paths, settings, output_root=out,
                                      warn=lambda text: print(text, file=sys.stderr))
    try:
        # The queue is made ready once the server has answered, not while it answers: a thread
        # importing and opening it beside the probe held the GIL while the loop waited to read
        # each reply, and the first request went out 10-15 ms later (against a fake server, and
        # one taking 100 ms to answer). The database is opened off the loop: it may wait for
        # another StableNew's write.
        with await asyncio.to_thread(QueueStore, paths.database_file) as store:
            started()
            folder = plan_run_folder(out, config.txt2img.prompt)
            result = await run_as_job(machinery, store, backend, config, node=url, cancel=token,
                                      on_event=progress.on_event, output_dir=folder)
    except QueueError as exc:
        print(exc.message, file=sys.stderr)
        if exc.detail:
            print(f"  ({exc.detail})", file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.close()
        await stop_ours(backend)
        await backend.aclose()
        await machinery.aclose()
    for record in result.records:
        print(record.path)
    for error in result.errors:
        where = f"image {error.image_index + 1}: " if error.image_index is not None else ""
        print(f"  {where}{error.message}", file=sys.stderr)
    # No folder is named when no image went into one (none is made then).
    where = f" Folder: {result.output_dir}" if result.folder_made else ""
    print(f"{result.message}{where}", file=sys.stderr)
    if result.status is RunStatus.completed:
        return EXIT_OK
    if result.status is RunStatus.cancelled:
        return EXIT_CANCELLED
    return EXIT_FAILED


#: How long a stopped run waits for the server to drop or interrupt its requests.
STOP_WAIT_S = 20.0


async def stop_ours(backend: Backend, wait_s: float = STOP_WAIT_S) -> None:
    """Before exit: wait (bounded, saying so) until every request of ours still on the server
    is interrupted or removed from its queue; never touches anyone else's job."""
    # Both kinds of client count the stops still under way; other backends stop at once.
    stopping = getattr(backend, "stopping", 0)
    finish_stops = getattr(backend, "finish_stops", None)
    if not stopping or finish_stops is None:
        return
    noun = "request" if stopping == 1 else "requests"
    print(f"Stopping {stopping} {noun} of ours still on the server (up to {wait_s:.0f} s)…",
          file=sys.stderr, flush=True)
    left = await finish_stops(wait_s)
    if left:
        print(f"{left} {'request' if left == 1 else 'requests'} could not be stopped in time and "
              "may still run on the server.", file=sys.stderr, flush=True)


def _password(args: argparse.Namespace, user: str, settings: AppSettings) -> str | None:
    """The password from --password-env, a prompt (a --user other than the one in Settings),
    or Settings; None (after saying why) when it cannot be had."""
    import os

    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            print(f"--password-env {args.password_env}: that environment variable is not set.",
                  file=sys.stderr)
        return value
    if args.user is None or args.user == settings.username or not user:
        return settings.password
    if not sys.stdin.isatty():
        print(f"--user {args.user}: no password. Give it with --password-env VARIABLE (this is "
              "not a terminal, so StableNew cannot ask for it).", file=sys.stderr)
        return None
    import getpass

    return getpass.getpass(f"Password for {args.user}: ")


def auth_words(url: str, *, sent: bool) -> str:
    """The CLI's words for a refused login: they name the options, not the Settings dialog."""
    how = ("Give them with --user NAME and --password-env VARIABLE (or --user alone, and type "
           "the password when asked).")
    if sent:
        return f"The server at {url} refused the user name and password (wrong user or password). {how}"
    return f"The server at {url} wants a user name and password (it runs with --api-auth). {how}"


def cannot_run(config: PipelineConfig, caps: Capabilities, url: str) -> str | None:
    """Why the server cannot run *config* at all (a model, upscaler, detector or ComfyUI node
    it does not have), checked before anything is sent; None when it can."""
    from stablenew.cluster.work import model_key, requirements_for

    req = requirements_for(config)

    def missing(wanted, have: tuple[str, ...], what: str, option: str) -> str | None:
        if not have:
            return None  # the server does not list them: let it decide
        keys = {model_key(h) for h in have}
        for name in sorted(wanted):
            if model_key(name) not in keys:
                shown = ", ".join(have[:8]) + (f" and {len(have) - 8} more" if len(have) > 8 else "")
                return (f"the server at {url} has no {what} named '{name}'. It has: {shown}. "
                        f"Change {option} in the config, or install it there.")
        return None

    checks = (
        missing({req.checkpoint} if req.checkpoint else set(), caps.checkpoints, "model",
                "txt2img.checkpoint"),
        missing(req.upscalers, caps.upscalers, "upscaler", "the upscaler"),
        missing(req.adetailer_models, caps.adetailer_models, "ADetailer model", "the ADetailer model"),
    )
    for problem in checks:
        if problem is not None:
            return problem
    if req.node_classes and caps.node_classes:
        lacking = sorted(req.node_classes - caps.node_classes)
        if lacking:
            return (f"the ComfyUI server at {url} lacks the node '{lacking[0]}'. Install the custom "
                    "node that provides it, or switch that stage off.")
    return None


def _no_server(exc: BackendError) -> int:
    print(exc.message, file=sys.stderr)
    if exc.detail:
        print(f"  ({exc.detail})", file=sys.stderr)
    return EXIT_NO_SERVER


class ProgressLine:
    """One updating line on a terminal (stage, step, ETA); plain lines when piped."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.total = 0
        self.width = 0
        self.last_plain = ""

    def on_event(self, event: RunEvent) -> None:
        from stablenew.pipeline.events import (
            ImageSaved,
            ProgressUpdate,
            RunStarted,
            RunWarning,
            StageStarted,
        )
        from stablenew.storage.words import plural

        if not self.enabled:
            return
        if isinstance(event, RunStarted):
            self.total = event.total_images
            self._line(f"Run {event.run_id}: {plural(event.total_images, 'image')}, stages "
                       f"{' → '.join(event.stages)} on {event.node}", final=True)
        elif isinstance(event, ProgressUpdate):
            step = f" step {event.step}/{event.steps}" if event.step and event.steps else ""
            eta = f" · ETA {_clock(event.eta_seconds)}" if event.eta_seconds is not None else ""
            text = (f"image {event.image_index + 1}/{self.total} · {event.stage}{step} · "
                    f"{event.overall_fraction:4.0%}{eta}")
            if self.tty:
                self._line(text)
        elif isinstance(event, StageStarted) and not self.tty:
            self._line(f"image {event.image_index + 1}/{self.total} · {event.stage} "
                       f"({event.index}/{event.count})", final=True)
        elif isinstance(event, ImageSaved):
            self._line(f"saved {event.record.path.name}", final=True)
        elif isinstance(event, RunWarning):
            self._line(f"warning: {event.message}", final=True)

    def _line(self, text: str, *, final: bool = False) -> None:
        if self.tty:
            pad = max(self.width - len(text), 0)
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self.width = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
