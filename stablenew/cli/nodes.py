"""`stablenew nodes`: the SD servers of the cluster without the window — list, add, remove,
probe.

Nodes live in `nodes.yaml` in the config folder (owner-only: it holds passwords), or in the
file given with `--nodes`. Passwords are never printed; `add --password-env VAR` reads one from
the environment so it does not land in the shell history.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.cli._common import fail, show_help

if TYPE_CHECKING:
    from collections.abc import Sequence

    from stablenew.cluster.dispatcher import ClusterSummary
    from stablenew.cluster.health import NodeHealth
    from stablenew.cluster.machinery import RunMachinery
    from stablenew.cluster.nodes import NodeConfig, NodeRegistry
    from stablenew.cluster.queue_events import QueueEventCallback
    from stablenew.cluster.queue_store import QueueStore


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("nodes", help="list, add, remove and probe the cluster's SD servers",
                            description="The SD servers StableNew spreads queued work over.")
    parser.add_argument("--nodes", type=Path, default=None,
                        help="nodes file (default: nodes.yaml in the config folder)")
    verbs = parser.add_subparsers(dest="nodes_command", metavar="ACTION")

    p = verbs.add_parser("list", help="the nodes and their settings (no passwords)")
    p.set_defaults(func=_list)

    p = verbs.add_parser("add", help="add a node and probe it")
    p.add_argument("name")
    p.add_argument("url", help="e.g. http://192.168.1.20:7860")
    p.add_argument("--kind", default="auto", choices=("auto", "a1111", "forge", "sdnext", "comfyui"))
    p.add_argument("--user", default="", help="user name (--api-auth / --listen auth)")
    p.add_argument("--password-env", default="", metavar="VAR",
                   help="take the password from this environment variable")
    p.add_argument("--tier", default="standard",
                   help="draft, standard, quality or premium: work asking for a tier goes there "
                        "first and overflows to the next tier when those nodes are busy or down")
    p.add_argument("--max-concurrent", type=int, default=1, help="jobs the node runs at once")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    p.add_argument("--disabled", action="store_true", help="add it switched off")
    p.add_argument("--no-probe", action="store_true", help="do not contact the node now")
    p.set_defaults(func=_add)

    p = verbs.add_parser("remove", help="remove a node")
    p.add_argument("name")
    p.set_defaults(func=_remove)

    p = verbs.add_parser("enable", help="switch a node on")
    p.add_argument("name")
    p.set_defaults(func=_enable, enabled=True)
    p = verbs.add_parser("disable", help="switch a node off (it keeps its settings)")
    p.add_argument("name")
    p.set_defaults(func=_enable, enabled=False)

    p = verbs.add_parser("probe", help="contact the nodes (or one) and show what each can do")
    p.add_argument("name", nargs="?")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per node (default 10)")
    p.set_defaults(func=_probe)

    parser.set_defaults(func=show_help(parser))




def _fail(message: str) -> int:
    return fail("nodes", message)


def nodes_path(given: Path | None) -> Path:
    from stablenew.storage.paths import AppPaths

    return given if given is not None else AppPaths.default().nodes_file


def load_registry(given: Path | None) -> NodeRegistry:
    """The registry, or SystemExit with the file, line and field of what is wrong in it."""
    from stablenew.cluster.nodes import NodeRegistry

    registry = NodeRegistry.load(nodes_path(given))
    if registry.error is not None:
        raise SystemExit(f"stablenew nodes: {registry.error}")
    return registry


def _list(args: argparse.Namespace) -> int:
    registry = load_registry(args.nodes)
    if not len(registry):
        print(f"No nodes yet ({registry.path}). Add one: stablenew nodes add NAME URL")
        return 0
    print(f"{'NAME':<16} {'KIND':<8} {'TIER':<8} {'JOBS':>4} {'ON':<3} {'LOGIN':<5} URL")
    for node in registry:
        login = "yes" if node.auth else "-"
        print(f"{node.name:<16} {node.kind.value:<8} {node.tier.value:<8} {node.max_concurrent:>4} "
              f"{'on' if node.enabled else 'off':<3} {login:<5} {node.url}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from stablenew.cluster.nodes import NodeConfig

    registry = load_registry(args.nodes)
    password = ""
    if args.password_env:
        password = os.environ.get(args.password_env, "")
        if not password:
            return _fail(f"The environment variable {args.password_env} is empty or not set.")
    try:
        node = NodeConfig(name=args.name, url=args.url, kind=args.kind, username=args.user,
                          password=password, tier=args.tier, max_concurrent=args.max_concurrent,
                          tags=args.tag, enabled=not args.disabled)
        registry.add(node)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return _fail(f"{field}: {first['msg'].removeprefix('Value error, ')}")
    except ValueError as exc:
        return _fail(str(exc))
    path = registry.save()
    print(f"Added {node.name} ({node.url}) to {path}.")
    if args.no_probe or not node.enabled:
        return 0
    results = _run_probe([node], timeout=10.0)
    _print_health(results)
    return 0 if results[0].usable else 1


def _remove(args: argparse.Namespace) -> int:
    registry = load_registry(args.nodes)
    try:
        registry.get(args.name)
    except KeyError:
        return _fail(f"There is no node called '{args.name}'. `stablenew nodes list` shows them.")
    registry.remove(args.name)
    registry.save()
    print(f"Removed {args.name}.")
    return 0


def _enable(args: argparse.Namespace) -> int:
    registry = load_registry(args.nodes)
    try:
        node = registry.get(args.name)
    except KeyError:
        return _fail(f"There is no node called '{args.name}'. `stablenew nodes list` shows them.")
    registry.replace(node.model_copy(update={"enabled": args.enabled}))
    registry.save()
    print(f"{args.name} is switched {'on' if args.enabled else 'off'}.")
    return 0


def _probe(args: argparse.Namespace) -> int:
    registry = load_registry(args.nodes)
    nodes = list(registry)
    if args.name:
        nodes = [n for n in nodes if n.name == args.name]
        if not nodes:
            return _fail(f"There is no node called '{args.name}'.")
    if not nodes:
        return _fail("No nodes yet. Add one: stablenew nodes add NAME URL")
    results = _run_probe(nodes, timeout=args.timeout, rescan=True)
    _print_health(results)
    return 0 if all(h.usable or h.state.value == "disabled" for h in results) else 1


def _run_probe(nodes, *, timeout: float, rescan: bool = False) -> list[NodeHealth]:
    """Each node's health after a probe; with *rescan*, an A1111-family server that answers
    reads its model folders again first (files copied there since it started are listed)."""
    import asyncio

    from stablenew.cluster.health import NodeMonitor

    async def main() -> list[NodeHealth]:
        monitor = NodeMonitor(nodes, timeout=timeout, probe_timeout=timeout)
        try:
            answered = [h.name for h in await monitor.check_all() if h.usable]
            if rescan:
                await asyncio.gather(*(monitor.recheck(name, rescan=True) for name in answered))
            return monitor.all_health()
        finally:
            await monitor.aclose()

    return asyncio.run(main())


def _print_health(results: list[NodeHealth]) -> None:
    from stablenew.cluster.work import GB

    for health in results:
        caps = health.capabilities
        if health.usable and caps is not None:
            vram = f"{caps.vram_total / GB:.0f} GB" if caps.vram_total else "VRAM unknown"
            if caps.has_gpu is False:
                vram = "no GPU: runs on the CPU, planned as slow until measured"
            what = " ".join(p for p in (caps.kind.value, caps.version, caps.device) if p)
            print(f"{health.name}: ok — {what}, {vram}; "
                  f"{len(caps.checkpoints)} checkpoints, {len(caps.upscalers)} upscalers, "
                  f"{len(caps.loras)} LoRAs, {len(caps.adetailer_models)} ADetailer models")
        else:
            print(f"{health.name}: {health.state.value} — {health.message}")


# --- the queue on the cluster (used by `stablenew queue run`) ----------------------------------------


def cluster_nodes(given: Path | None) -> list:
    """The enabled nodes of the nodes file, or [] when there is no file (single-node mode)."""
    path = nodes_path(given)
    if not path.exists():
        return []
    return load_registry(given).enabled()


def run_queue_on_cluster(store: QueueStore, nodes: Sequence[NodeConfig], machinery: RunMachinery,
                         *, until_empty: bool, on_event: QueueEventCallback | None,
                         backoff: float = 2.0, quiet: bool = False, data_dir: Path | None = None,
                         stopped: list[str] | None = None) -> ClusterSummary:
    """Work through *store* on every healthy node of *nodes*; returns the ClusterSummary.

    Node state changes are printed as they happen (unless *quiet*); speeds learned on the
    way are kept in the data folder for the next run and for `stablenew plan`. With
    *stopped*, SIGINT/SIGTERM stop every node cleanly (noted in that list).
    """
    import asyncio

    from stablenew.cluster.estimates import load_speeds, save_speeds, speeds_file

    def node_changed(health: NodeHealth) -> None:
        if quiet:
            return
        if health.usable:
            print(f"{health.name}: ready", flush=True)
        else:
            print(f"{health.name}: {health.state.value} — {health.message}", flush=True)

    speeds_path = speeds_file(data_dir) if data_dir is not None else None
    # Each node's worker is made by the same machinery as every other way of running work.
    dispatcher = machinery.dispatcher(
        store, nodes, on_event=on_event, on_node_change=node_changed, backoff_base=backoff,
        speeds=load_speeds(speeds_path) if speeds_path is not None else None)
    try:
        async def main() -> ClusterSummary:
            if stopped is not None:
                from stablenew.cli._common import stop_on_signals

                stop_on_signals(dispatcher.stop, stopped)
            try:
                return await dispatcher.run(until_empty=until_empty)
            finally:
                await machinery.aclose()  # on this loop: the prompt step's client lives here

        summary = asyncio.run(main())
    finally:
        if speeds_path is not None:
            try:
                save_speeds(speeds_path, dispatcher.speeds())
            except OSError as exc:  # only a lost head start for the next run
                print(f"Could not keep the learned node speeds: {exc}", file=sys.stderr)
    if not quiet and summary.per_node:
        print("Per node: " + ", ".join(f"{n} {c}" for n, c in sorted(summary.per_node.items())))
    if summary.stalled:
        print(f"Stopped with work left: {summary.stalled}", file=sys.stderr)
    return summary
