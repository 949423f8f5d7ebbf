"""`stablenew queue`: the persistent queue without the window — list, add, run, report, and
the operations (pause, resume, cancel, retry, clear).

The queue lives in the data folder's database (STABLENEW_HOME or the platform's folder), or
in the file given with `--db`. `run` works through it on one node and can be stopped at any
moment (even killed): the next `run` carries on where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.cli._common import fail, show_help, stop_on_signals
from stablenew.storage.words import duration, plural

if TYPE_CHECKING:
    from stablenew.cluster.nodes import NodeConfig
    from stablenew.cluster.queue_events import QueueEventCallback, RunSummary
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("queue", help="list, add to and run the persistent queue",
                            description="The persistent queue: batches that survive crashes.")
    parser.add_argument("--db", type=Path, default=None,
                        help="queue database file (default: the data folder's stablenew.db)")
    verbs = parser.add_subparsers(dest="queue_command", metavar="ACTION")

    p = verbs.add_parser("list", help="jobs in run order with their progress")
    p.add_argument("job", nargs="?", help="show the images of this job")
    p.set_defaults(func=_list)

    p = verbs.add_parser("add", help="add a config, preset or prompt pack as a job")
    p.add_argument("file", type=Path,
                   help="a PipelineConfig YAML, a preset YAML, or a prompt pack (.txt, .yaml "
                        "with prompts, or a pack folder)")
    p.add_argument("--count", type=int, default=None,
                   help="images per config (per prompt of a pack); default: the batch count × "
                        "batch size of the config")
    p.add_argument("--base", type=Path, default=None,
                   help="for a pack: the config or preset its prompts are laid over")
    p.add_argument("--name", default="", help="name shown in the queue")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    p.add_argument("--output", type=Path, default=None,
                   help="folder under which the job's folder is made (default: Settings)")
    p.set_defaults(func=_add)

    p = verbs.add_parser("run", help="work through the queue (on every node of nodes.yaml when "
                                     "there is one, else on one server)",
                         epilog="Exit codes: 0 every image done; 1 some images failed, the server "
                                "cannot be used, or no node answered for 5 minutes (the rest stays "
                                "queued); 2 the command line is wrong; 130 stopped by Ctrl+C or "
                                "SIGTERM (running images go back in the queue).")
    p.add_argument("--node", default=None,
                   help="run on this one server address only (default: the cluster of the nodes "
                        "file if it has enabled nodes, else the server in Settings)")
    p.add_argument("--nodes", type=Path, default=None,
                   help="nodes file for the cluster (default: nodes.yaml in the config folder)")
    p.add_argument("--single", action="store_true",
                   help="ignore the nodes file and run on the server in Settings")
    p.add_argument("--until-empty", action="store_true",
                   help="stop when nothing is left instead of waiting for new jobs")
    p.add_argument("--depth", type=int, default=2,
                   help="requests kept at the server: 1 running + N-1 ready (default 2)")
    p.add_argument("--backoff", type=float, default=2.0,
                   help="seconds before the first retry of a transient error; doubles each time")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    # Every image is recorded for learning now (unless Learning is Off in Settings); the
    # option stays so scripts written for it keep working.
    p.add_argument("--learn", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_run)

    p = verbs.add_parser("report", help="totals, speed and failures")
    p.set_defaults(func=_report)

    for name, paused in (("pause", True), ("resume", False)):
        p = verbs.add_parser(name, help=f"{name} the whole queue (running images finish)")
        p.set_defaults(func=_pause, paused=paused)

    p = verbs.add_parser("cancel", help="cancel a job (ID) or one image (ID/N)")
    p.add_argument("id")
    p.set_defaults(func=_cancel)

    p = verbs.add_parser("retry", help="retry the failed images of a job (ID), one image (ID/N), "
                                       "or all (no ID)")
    p.add_argument("id", nargs="?")
    p.add_argument("--cancelled", action="store_true", help="also retry cancelled images")
    p.set_defaults(func=_retry)

    p = verbs.add_parser("clear", help="remove finished jobs (failed ones stay unless --failed)")
    p.add_argument("--failed", action="store_true", help="also remove jobs with failed images")
    p.set_defaults(func=_clear)

    p = verbs.add_parser("bump", help="raise a job's priority so it runs sooner")
    p.add_argument("id")
    p.add_argument("--by", type=int, default=1)
    p.set_defaults(func=_bump)

    parser.set_defaults(func=show_help(parser))




# --- helpers -----------------------------------------------------------------------------------


def _fail(message: str) -> int:
    return fail("queue", message)


def _open(args: argparse.Namespace) -> QueueStore:
    from stablenew.cluster.queue_store import QueueError, QueueStore

    try:
        return QueueStore(args.db)
    except QueueError as exc:
        raise SystemExit(_fail(exc.message)) from None


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else duration(seconds, compact=True)


# --- verbs -------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from stablenew.cluster.queue_store import QueueError

    with _open(args) as store:
        if args.job:
            try:
                kind, job_id = store.reads.resolve(args.job)
            except QueueError as exc:
                return _fail(exc.message)
            if kind != "job":
                job_id = store.reads.get_item(int(job_id)).job_id
            for item in store.reads.items(str(job_id)):
                reason = f"  {item.error}" if item.error else ""
                node = f" on {item.node}" if item.node and item.state.value in (
                    "assigned", "running") else ""
                tries = f" (try {item.attempts + 1})" if item.attempts else ""
                print(f"{item.label:<16} {item.state.value:<9} seed {item.seed}{node}{tries}{reason}")
            return 0
        jobs = store.reads.list_jobs()
        paused = " (paused)" if store.reads.is_paused() else ""
        if not jobs:
            print(f"The queue is empty{paused}.")
            return 0
        print(f"{'ID':<10} {'STATE':<9} {'DONE':>11} {'PRIO':>4} {'ETA':>7}  NAME{paused}")
        for job in jobs:
            c = job.counts
            failed = f" {c.failed}✗" if c.failed else ""
            done = f"{c.done}/{c.total}{failed}"
            print(f"{job.id:<10} {job.state.value:<9} {done:>11} {job.priority:>4} "
                  f"{_duration(job.eta_seconds):>7}  {job.name}")
    return 0


def _is_pack(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() == ".txt":
        return True
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    from stablenew.storage.documents import DocumentError, parse_yaml, read_document_text

    try:
        data, _node = parse_yaml(read_document_text(path), path)
    except DocumentError:
        return False  # the config loader names the problem
    return isinstance(data, dict) and "prompts" in data


def _load_job_file(path: Path):
    """(config, preset name or None) from a config or preset YAML file; one loader, so every
    unreadable file (binary, wrong encoding, control characters, bad YAML) is a DocumentError."""
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.documents import parse_yaml, read_document_text

    text = read_document_text(path)
    data, _node = parse_yaml(text, path)
    if isinstance(data, dict) and "name" in data and "config" in data:
        from stablenew.pipeline.presets import parse_preset

        preset, _warnings = parse_preset(text, path)
        return preset.apply_to(PipelineConfig()), preset.name
    return PipelineConfig.from_yaml(text, path=str(path)), None


def _add(args: argparse.Namespace) -> int:
    from stablenew.cluster.jobs import JobKind, JobOrigin
    from stablenew.cluster.queue_store import QueueError
    from stablenew.storage.documents import DocumentError
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import SettingsUnreadable, load_settings

    if args.count is not None and args.count < 1:
        return _fail("--count must be 1 or more.")
    pack_name = None
    try:
        if _is_pack(args.file):
            from stablenew.pipeline.config import PipelineConfig
            from stablenew.randomizer.packs import pack_plan_for, plan_pack, validate_pack_path

            pack, wildcards = validate_pack_path(args.file)
            if wildcards is None:
                # As in the window: a pack without wildcards of its own uses the Settings folder.
                from stablenew.cli._common import app_settings

                wildcards = app_settings()[1].wildcards_path()
            base, preset = _load_job_file(args.base) if args.base else (PipelineConfig(), None)
            base = _with_current_model(args, base)
            pack_name = pack.name
            # Lazy: each prompt's randomizer syntax and wildcards are expanded as the plan is
            # streamed into the queue, never held in memory all at once.
            config = plan_pack(pack, base, preset=preset,
                               plan_for=pack_plan_for(None, wildcards_dir=wildcards))
        else:
            config, preset = _load_job_file(args.file)
            config = _with_current_model(args, config)
    except DocumentError as exc:
        return _fail(str(exc))
    output_root = args.output
    if output_root is None:
        paths = AppPaths.default()
        try:
            settings, problem = load_settings(paths, needs=("output_dir",))
        except SettingsUnreadable as exc:
            return _fail(f"Your settings could not be read: {exc} Fix it, or say where the "
                         "images go with --output FOLDER.")
        if problem:
            print(problem, file=sys.stderr)
        output_root = settings.output_path(paths)
    with _open(args) as store:
        try:
            job = store.add_job(config, name=args.name or pack_name or preset or "",
                                kind=JobKind.pack if pack_name else JobKind.config,
                                count=args.count, priority=args.priority,
                                origin=JobOrigin(preset=preset, pack=pack_name),
                                output_root=output_root)
        except QueueError as exc:
            return _fail(exc.message)
        except (DocumentError, ValueError) as exc:  # a pack entry that does not make a config
            return _fail(f"{args.file}: {exc}")
        print(f"Added job {job.id}: {plural(job.counts.total, 'image')}, \"{job.name}\" → {job.output_dir}")
    return 0


def _with_current_model(args: argparse.Namespace, config):
    """With several nodes, "the server's current model" is fixed now to the preferred node's,
    and said: otherwise one batch would mix the models of different nodes."""
    if config.txt2img.checkpoint:
        return config
    nodes = _cluster_nodes(args)
    if len(nodes) < 2:
        return config  # one server: its current model is the one every image gets
    import asyncio

    from stablenew.cluster.model_choice import choose_model, with_model

    choice = asyncio.run(choose_model(nodes))
    if not choice.checkpoint:
        print(f"The config names no model and no node said which one it runs ({choice.problem}); "
              "each node will use its own, so images may differ in model.", file=sys.stderr)
        return config
    print(f"Model: {choice.checkpoint} (the current model of node '{choice.node}'); only nodes "
          "that have it will run this job.")
    return with_model(config, choice.checkpoint)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from stablenew.backends.errors import AuthFailed, BackendError
    from stablenew.cluster.queue_events import (
        ItemFinished,
        JobFinished,
        NodeProblem,
        QueueEvent,
        Waiting,
    )
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import load_settings

    paths = AppPaths.default()
    settings, problem = load_settings(paths)
    if problem:
        print(problem, file=sys.stderr)
    url = args.node or settings.server_url

    def show(event: QueueEvent) -> None:
        if args.quiet:
            return
        if isinstance(event, ItemFinished):
            text = {"done": "done", "failed": "FAILED", "cancelled": "cancelled"}.get(
                event.state.value, "will retry" if event.retry_in else "given back")
            reason = f": {event.message}" if event.message else ""
            print(f"{event.item.label:<16} {text}{reason}", flush=True)
        elif isinstance(event, JobFinished):
            c = event.job.counts
            print(f"Job {event.job.id} finished: {c.done} done, {c.failed} failed, "
                  f"{c.cancelled} cancelled.", flush=True)
        elif isinstance(event, NodeProblem):
            print(f"{event.node}: {event.message} Waiting for it to come back…", flush=True)
        elif isinstance(event, Waiting):
            print(event.message, flush=True)

    stopped: list[str] = []

    cluster = [] if args.node or args.single else _cluster_nodes(args)
    if cluster:
        return _run_cluster(args, cluster, show, paths, settings)

    async def main() -> RunSummary:
        from stablenew.backends.connect import connect
        from stablenew.cluster.machinery import RunMachinery

        auth = (settings.username, settings.password) if settings.username else None
        backend = await connect(url, auth=auth, timeout=settings.request_timeout_s)
        # The steps every path shares: the prompt step, the run log, the learning record.
        machinery = RunMachinery.headless(paths, settings, learning_db=args.db,
                                          warn=lambda text: print(text, file=sys.stderr))
        try:
            with _open(args) as store:
                runner = machinery.queue_runner(store, backend, node=url, depth=args.depth,
                                                backoff_base=args.backoff, on_event=show)
                stop_on_signals(runner.stop, stopped)
                return await runner.run(until_empty=args.until_empty)
        finally:
            from stablenew.cli.run import stop_ours

            await stop_ours(backend)  # stopped: our requests still queued there are interrupted
            await backend.aclose()
            await machinery.aclose()

    from stablenew.cluster.queue_store import QueueError

    try:
        summary = asyncio.run(main())
    except AuthFailed:
        refused = "refused the user name and password (wrong user or password)" if settings.username \
            else "wants a user name and password (it runs with --api-auth)"
        return _fail(f"The server at {url} {refused}. queue run logs in with the user name and "
                     f"password of {paths.settings_file}; or add the server as a node with "
                     "`stablenew nodes add NAME URL --user NAME --password-env VARIABLE`.")
    except BackendError as exc:
        return _fail(f"{exc.message} ({url})")
    except QueueError as exc:
        return _fail(exc.message)
    if _said_summary(summary, stopped):
        return 130
    if args.until_empty:
        with _open(args) as store:
            if store.reads.is_paused() and store.reads.has_pending():
                print("The queue is paused; `stablenew queue resume` lets it run.")
    return 1 if summary.failed else 0


def _cluster_nodes(args: argparse.Namespace) -> list:
    from stablenew.cli.nodes import cluster_nodes

    try:
        return cluster_nodes(getattr(args, "nodes", None))
    except SystemExit as exc:  # a broken nodes file: say so, do not guess a single node
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


def _run_cluster(args: argparse.Namespace, nodes: list[NodeConfig], show: QueueEventCallback,
                 paths: AppPaths, settings: AppSettings) -> int:
    """`queue run` over every enabled node of the nodes file."""
    from stablenew.cli.nodes import run_queue_on_cluster
    from stablenew.cluster.machinery import RunMachinery
    from stablenew.cluster.queue_store import QueueError

    if not args.quiet:
        print(f"Running the queue on {plural(len(nodes), 'node')}: "
              + ", ".join(n.name for n in nodes), flush=True)
    machinery = RunMachinery.headless(paths, settings, learning_db=args.db,
                                      warn=lambda text: print(text, file=sys.stderr))
    stopped: list[str] = []
    try:
        with _open(args) as store:
            summary = run_queue_on_cluster(
                store, nodes, machinery, until_empty=args.until_empty, on_event=show,
                backoff=args.backoff, quiet=args.quiet, data_dir=paths.data_dir,
                stopped=stopped)
    except QueueError as exc:
        return _fail(exc.message)
    finally:
        if machinery.learning is not None:  # closed already when the cluster ran
            machinery.learning.close()
    if _said_summary(summary, stopped):
        return 130
    return 1 if summary.failed or summary.stalled else 0


def _said_summary(summary: RunSummary, stopped: list[str]) -> bool:
    """Print what a queue run did; True when a signal stopped it (the exit code is then 130)."""
    print(f"{summary.done} done, {summary.failed} failed, {summary.cancelled} cancelled, "
          f"{summary.retried} retried in {_duration(summary.seconds)}.")
    if stopped:
        print("Stopped: the images that were running went back in the queue; "
              "`stablenew queue run` carries on.")
    return bool(stopped)


def _report(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.reads.report()
    c = report.counts
    state = "paused" if report.paused else "active"
    print(f"Queue {state}: {plural(report.jobs, 'job')}, {plural(c.total, 'image')}: {c.done} done, "
          f"{c.queued} queued, {c.assigned + c.running} in flight, {c.failed} failed, "
          f"{c.cancelled} cancelled.")
    if report.seconds_per_item is not None:
        print(f"Recent speed: {report.seconds_per_item:.2f} s per image.")
    for label, reason in report.failures:
        print(f"  failed {label}: {reason}")
    return 0


def _pause(args: argparse.Namespace) -> int:
    with _open(args) as store:
        store.set_paused(args.paused)
    print("The queue is paused; running images finish." if args.paused else "The queue runs again.")
    return 0


def _with_target(args: argparse.Namespace, on_job, on_item) -> int:
    from stablenew.cluster.queue_store import QueueError

    with _open(args) as store:
        try:
            kind, target = store.reads.resolve(args.id)
            message = on_job(store, target) if kind == "job" else on_item(store, int(target))
        except QueueError as exc:
            return _fail(exc.message)
    print(message)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    return _with_target(
        args,
        lambda store, job: f"Cancelled {plural(store.cancel_job(job), 'image')} of job {job}.",
        lambda store, item: (f"Cancelled {store.reads.get_item(item).label}." if store.cancel_item(item)
                             else f"{store.reads.get_item(item).label} had already finished."))


def _retry(args: argparse.Namespace) -> int:
    if args.id is None:
        with _open(args) as store:
            count = store.retry_failed(include_cancelled=args.cancelled)
        print(f"{plural(count, 'image')} back in the queue.")
        return 0
    return _with_target(
        args,
        lambda store, job: f"{plural(store.retry_failed(job, include_cancelled=args.cancelled), 'image')}"
                           f" of job {job} back in the queue.",
        lambda store, item: (f"{store.reads.get_item(item).label} is back in the queue."
                             if store.retry(item) else
                             f"{store.reads.get_item(item).label} has not failed; nothing to retry."))


def _clear(args: argparse.Namespace) -> int:
    with _open(args) as store:
        count = store.clear_finished(include_failed=args.failed)
    print(f"Removed {plural(count, 'finished job')}.")
    return 0


def _bump(args: argparse.Namespace) -> int:
    return _with_target(
        args,
        lambda store, job: f"Job {job} now has priority {store.bump_priority(job, args.by)}.",
        lambda store, item: f"Priority belongs to jobs; bump job {store.reads.get_item(item).job_id}.")


__all__ = ["register"]
