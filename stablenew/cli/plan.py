"""`stablenew plan`: the dry run — which node would take each queued image, when it would start
and finish, the makespan, and the images no node can take (with the reason) — without sending
any generation to any node. The nodes are only asked what they have (a probe).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stablenew.storage.words import duration, plural


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plan", help="dry run: which node would take each queued image",
                            description="Show the scheduler's plan for the queue without "
                                        "sending anything to be generated.")
    parser.add_argument("--db", type=Path, default=None,
                        help="queue database file (default: the data folder's stablenew.db)")
    parser.add_argument("--nodes", type=Path, default=None,
                        help="nodes file (default: nodes.yaml in the config folder)")
    parser.add_argument("--policy", default="earliest_finish",
                        choices=("earliest_finish", "round_robin", "least_used"),
                        help="scheduling policy to show (default: StableNew's earliest finish)")
    parser.add_argument("--limit", type=int, default=None, help="show only the first N images")
    parser.add_argument("--timeout", type=float, default=10.0, help="probe timeout per node")
    parser.set_defaults(func=_plan)


def _seconds(value: float) -> str:
    return duration(value, compact=True, tenths=True)


def _plan(args: argparse.Namespace) -> int:
    import asyncio

    from stablenew.cli.nodes import load_registry
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.dry_run import dry_run
    from stablenew.cluster.estimates import load_speeds, speeds_file
    from stablenew.cluster.health import NodeMonitor
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.storage.paths import AppPaths

    registry = load_registry(args.nodes)
    nodes = list(registry)
    if not nodes:
        print("stablenew plan: no nodes yet. Add one: stablenew nodes add NAME URL",
              file=sys.stderr)
        return 1
    paths = AppPaths.default()
    db = args.db if args.db is not None else paths.database_file
    if not db.exists():
        print(f"stablenew plan: there is no queue at {db} yet.", file=sys.stderr)
        return 1

    async def probe():
        monitor = NodeMonitor(nodes, timeout=args.timeout, probe_timeout=args.timeout)
        try:
            await monitor.check_all()
        finally:
            await monitor.aclose()
        return monitor

    monitor = asyncio.run(probe())
    with QueueStore(db) as store:
        dispatcher = ClusterDispatcher(store, monitor,
                                       speeds=load_speeds(speeds_file(paths.data_dir)))
        table = dry_run(store, dispatcher.views(), policy=args.policy, limit=args.limit)

    for health in monitor.all_health():
        if not health.usable:
            print(f"{health.name}: {health.state.value} — {health.message}")
    if not table.rows:
        print("Nothing is queued.")
        return 0
    width = max(len(r.label) for r in table.rows)
    print(f"{'IMAGE':<{width}}  {'JOB':<20} {'NODE':<16} {'START':>8} {'FINISH':>8}")
    for row in table.rows:
        if row.node:
            print(f"{row.label:<{width}}  {row.job_name[:20]:<20} {row.node:<16} "
                  f"{_seconds(row.start):>8} {_seconds(row.finish):>8}")
    per_node: dict[str, int] = {}
    for row in table.rows:
        if row.node:
            per_node[row.node] = per_node.get(row.node, 0) + 1
    print()
    print(f"Makespan {_seconds(table.makespan)} (no plan can beat {_seconds(table.lower_bound)}); "
          + ", ".join(f"{n}: {c}" for n, c in sorted(per_node.items())))
    if table.unassignable:
        print(f"{plural(len(table.unassignable), 'image')} no node can take:")
        for row in table.unassignable:
            print(f"  {row.label}  {row.reason}")
    print("Times are estimates from each node's measured speed (or its VRAM before it has "
          "finished any work). Nothing was sent.")
    return 0
