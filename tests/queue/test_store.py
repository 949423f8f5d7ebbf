"""QueueStore: the state machine, the claim API and every user operation, on a real SQLite file."""

from __future__ import annotations

import random
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.cluster.jobs import (
    TRANSITIONS,
    ItemState,
    JobOrigin,
    JobState,
    can_move,
    item_name_prefix,
    per_image_configs,
)
from stablenew.cluster.queue_store import QueueError, QueueStore, UnknownId, backoff_delay
from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import PipelineConfig


def cfg(prompt: str = "a cat", *, count: int = 1, size: int = 1, seed: int = -1) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.batch_count": count, "txt2img.batch_size": size,
        "txt2img.seed": seed})


@pytest.fixture
def store(tmp_path):
    s = QueueStore(tmp_path / "q.db")
    yield s
    s.close()


def drain(store: QueueStore, node: str = "n1") -> list[str]:
    """Run every claimable item to done, returning item labels in claim order."""
    order = []
    while (claim := store.claim_next(node)) is not None:
        assert store.mark_running(claim.item.id, claim.lease)
        assert store.complete(claim.item.id, claim.lease, [f"{claim.item.name_prefix}.png"])
        order.append(claim.item.label)
    return order


def test_database_is_wal_and_schema_versioned(store, tmp_path):
    db = sqlite3.connect(tmp_path / "q.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM queue_meta WHERE key='schema_version'").fetchone()[0] == "3"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"queue_meta", "queue_jobs", "queue_items"}
    db.close()


def test_a_version_1_database_is_upgraded_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "q.db")
    db.executescript("""
        CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO queue_meta VALUES ('schema_version', '1'), ('paused', '0'), ('revision', '0');
        CREATE TABLE queue_jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0, position REAL NOT NULL, created_at REAL NOT NULL,
            output_dir TEXT NOT NULL, base_config TEXT, origin TEXT NOT NULL DEFAULT '{}',
            node_pin TEXT, total INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE queue_items (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL,
            state TEXT NOT NULL, seed INTEGER NOT NULL, config TEXT, attempts INTEGER NOT NULL
            DEFAULT 0, not_before REAL NOT NULL DEFAULT 0, node TEXT, lease TEXT, error TEXT,
            error_detail TEXT, outputs TEXT NOT NULL DEFAULT '[]', started_at REAL, finished_at REAL,
            UNIQUE (job_id, idx));
        INSERT INTO queue_jobs VALUES ('oldjob00', 'old', 'config', 0, 1, 0, 'out', NULL, '{}', NULL, 1);
        INSERT INTO queue_items (job_id, idx, state, seed, config) VALUES ('oldjob00', 0, 'done', 3, '{}');
    """)
    db.close()
    with QueueStore(tmp_path / "q.db") as store:
        (item,) = store.reads.items("oldjob00")
        assert item.state is ItemState.done and item.variant.id is None
        assert store.reads.list_jobs()[0].name == "old"
        assert store.reads.list_jobs()[0].tier is None  # version 3 added the asked tier


def test_a_job_keeps_the_node_tier_it_asks_for(store):
    asked = store.add_job(cfg(count=2), name="drafts", tier=NodeTier.draft)
    plain = store.add_job(cfg(count=1), name="plain")
    assert store.reads.get_job(asked.id).tier is NodeTier.draft
    assert store.reads.get_job(plain.id).tier is None
    claim = store.claim_next("n")
    assert claim is not None and claim.job.tier is NodeTier.draft


def test_a_file_that_is_not_a_database_is_refused_with_what_to_do(tmp_path):
    bad = tmp_path / "stablenew.db"
    bad.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(QueueError, match="damaged or is not a StableNew database"):
        QueueStore(bad)
    assert bad.read_bytes().startswith(b"this is not SQLite"), "nothing was overwritten"


def test_newer_schema_is_refused_with_a_plain_message(tmp_path):
    QueueStore(tmp_path / "q.db").close()
    db = sqlite3.connect(tmp_path / "q.db")
    db.execute("UPDATE queue_meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(QueueError, match="newer StableNew"):
        QueueStore(tmp_path / "q.db")


def test_batches_become_one_item_per_image_with_resolved_seeds(store):
    job = store.add_job(cfg(count=3, size=2, seed=100), name="cats",
                        origin=JobOrigin(pack="animals"))
    assert job.counts.total == 6 and job.state is JobState.queued
    assert job.origin.pack == "animals"
    items = store.reads.items(job.id)
    assert [i.seed for i in items] == [100, 101, 102, 103, 104, 105]
    config = store.reads.config_for(items[2])
    assert (config.txt2img.seed, config.txt2img.batch_count, config.txt2img.batch_size) == (102, 1, 1)
    random_job = store.add_job(cfg(count=4))
    seeds = [i.seed for i in store.reads.items(random_job.id)]
    assert all(0 <= s < 2**32 for s in seeds) and len(set(seeds)) == 4


def test_a_lazy_plan_is_streamed_and_each_item_keeps_its_own_config(store):
    def plan():
        for word in ("red", "green", "blue"):
            yield cfg(f"a {word} ball", seed=7)

    job = store.add_job(plan(), name="balls")
    prompts = [store.reads.config_for(i).txt2img.prompt for i in store.reads.items(job.id)]
    assert prompts == ["a red ball", "a green ball", "a blue ball"]


def test_plan_items_keep_their_variant_and_count_multiplies_each(store):
    from stablenew.pipeline.records import RunTags

    class Item:  # the shape of the randomizer's PlanItem / PackRunItem
        def __init__(self, prompt, variant, label):
            self.config = cfg(prompt, seed=4)
            self.tags = RunTags(variant_id=variant, variant_label=label)

    job = store.add_job(iter([Item("a", "p1", "a cat"), Item("b", "p2", "a dog")]), count=2)
    items = store.reads.items(job.id)
    assert [(i.variant.id, i.variant.label, i.seed) for i in items] == [
        ("p1", "a cat", 4), ("p1", "a cat", 5), ("p2", "a dog", 4), ("p2", "a dog", 5)]
    assert store.reads.config_for(items[3]).txt2img.prompt == "b"


def test_empty_plan_is_refused_and_leaves_nothing(store):
    with pytest.raises(QueueError, match="no images"):
        store.add_job(iter(()))
    assert store.reads.list_jobs() == []


def test_state_machine_allows_only_the_documented_moves():
    assert not TRANSITIONS[ItemState.done], "done must stay done"
    assert can_move(ItemState.queued, ItemState.assigned)
    assert not can_move(ItemState.queued, ItemState.done)
    assert can_move(ItemState.failed, ItemState.queued)


def test_claim_moves_queued_to_assigned_to_running_to_done(store):
    job = store.add_job(cfg(count=2, seed=1))
    claim = store.claim_next("gpu-a")
    assert claim.item.state is ItemState.assigned and claim.item.node == "gpu-a"
    assert store.reads.get_item(claim.item.id).state is ItemState.assigned
    assert store.reads.get_job(job.id).nodes == ("gpu-a",)
    assert store.mark_running(claim.item.id, claim.lease)
    assert not store.mark_running(claim.item.id, claim.lease), "running twice is refused"
    assert not store.complete(claim.item.id, "someone-else", ["x.png"]), "wrong lease refused"
    assert store.complete(claim.item.id, claim.lease, ["x.png"])
    done = store.reads.get_item(claim.item.id)
    assert done.state is ItemState.done and done.outputs == ("x.png",)
    assert not store.complete(claim.item.id, claim.lease, ["y.png"]), "done stays done"
    assert store.reads.get_job(job.id).counts.done == 1


def test_claim_order_priority_then_position_then_image(store):
    a = store.add_job(cfg("a", count=2, seed=1))
    b = store.add_job(cfg("b", count=2, seed=1))
    c = store.add_job(cfg("c", count=1, seed=1), priority=5)
    assert drain(store) == [f"{c.id}/1", f"{a.id}/1", f"{a.id}/2", f"{b.id}/1", f"{b.id}/2"]


def test_a_move_made_by_another_connection_meanwhile_is_not_undone(store, tmp_path, monkeypatch):
    """Two windows (or a window and `stablenew queue move`) on one queue: a move reads the order
    in its own transaction, so another connection's move just before it is kept."""
    import contextlib

    a, b, c = (store.add_job(cfg(p, seed=1)) for p in "abc")
    other = QueueStore(tmp_path / "q.db")
    real_write = store._db.write

    @contextlib.contextmanager
    def write_after_the_other_moved():
        other.move_job(c.id, 0)  # lands between our look at the order and our transaction
        with real_write() as db:
            yield db

    monkeypatch.setattr(store._db, "write", write_after_the_other_moved)
    try:
        store.move_job(a.id, 2)
    finally:
        monkeypatch.undo()
        other.close()
    assert [j.id for j in store.reads.list_jobs()] == [c.id, b.id, a.id]


def test_reorder_and_move_change_the_run_order(store):
    a, b, c = (store.add_job(cfg(p, seed=1)) for p in "abc")
    store.reorder([c.id, a.id, b.id])
    assert [j.id for j in store.reads.list_jobs()] == [c.id, a.id, b.id]
    store.move_job(b.id, 0)
    assert [j.id for j in store.reads.list_jobs()] == [b.id, c.id, a.id]
    store.reorder([a.id, b.id])  # a partial view keeps c in its place
    assert [j.id for j in store.reads.list_jobs()] == [a.id, c.id, b.id]
    assert drain(store) == [f"{a.id}/1", f"{c.id}/1", f"{b.id}/1"]
    with pytest.raises(UnknownId):
        store.reorder(["nope"])


def test_priority_bump_jumps_the_queue(store):
    a = store.add_job(cfg("a", seed=1))
    b = store.add_job(cfg("b", seed=1))
    assert store.bump_priority(b.id) == 1
    assert [j.id for j in store.reads.list_jobs()] == [b.id, a.id]
    store.set_priority(b.id, -1)
    assert [j.id for j in store.reads.list_jobs()] == [a.id, b.id]


def test_pause_stops_claims_and_resume_restarts_them(store):
    store.add_job(cfg(seed=1))
    store.set_paused(True)
    assert store.reads.is_paused() and store.claim_next("n1") is None
    store.set_paused(False)
    assert store.claim_next("n1") is not None


def test_transient_failures_retry_with_exponential_backoff_then_fail(store):
    job = store.add_job(cfg(seed=1))
    now = 1000.0
    for attempt in (1, 2, 3):
        claim = store.claim_next("n1", now=now)
        assert claim is not None
        store.mark_running(claim.item.id, claim.lease, now=now)
        state = store.fail(claim.item.id, claim.lease, "Server error", transient=True,
                           backoff_base=0.5, now=now)
        assert state is ItemState.queued
        item = store.reads.get_item(claim.item.id)
        assert item.not_before == pytest.approx(now + 0.5 * 2 ** (attempt - 1))
        assert store.claim_next("n1", now=now) is None, "still backing off"
        now = item.not_before
    claim = store.claim_next("n1", now=now)
    store.mark_running(claim.item.id, claim.lease, now=now)
    assert store.fail(claim.item.id, claim.lease, "Server error", transient=True,
                      now=now) is ItemState.failed
    item = store.reads.get_item(claim.item.id)
    assert item.attempts == 4 and item.error == "Server error"
    assert store.reads.get_job(job.id).state is JobState.failed
    assert backoff_delay(3, 2.0) == 8.0


def test_rejection_fails_at_once_with_the_reason(store):
    store.add_job(cfg(seed=1))
    claim = store.claim_next("n1")
    store.mark_running(claim.item.id, claim.lease)
    assert store.fail(claim.item.id, claim.lease, "Sampler 'X' is unknown",
                      detail="422 ...", transient=False) is ItemState.failed
    item = store.reads.get_item(claim.item.id)
    assert (item.attempts, item.error, item.error_detail) == (1, "Sampler 'X' is unknown", "422 ...")


def test_cancel_item_and_job_and_the_runner_loses_its_lease(store):
    job = store.add_job(cfg(count=3, seed=1))
    claim = store.claim_next("n1")
    store.mark_running(claim.item.id, claim.lease)
    assert store.cancel_item(claim.item.id)
    assert store.reads.item_states([claim.item.id])[claim.item.id][0] is ItemState.cancelled
    assert not store.cancel_item(claim.item.id), "already cancelled"
    assert store.cancel_job(job.id) == 2
    assert store.reads.get_job(job.id).state is JobState.cancelled
    assert not store.complete(claim.item.id, "another lease", ["late.png"])
    # Its runner saved the image before it heard of the cancel: the image exists, so the item
    # is done (a cancel stops what is still to come; it never deletes what was made).
    assert store.complete(claim.item.id, claim.lease, ["late.png"])
    assert store.reads.get_item(claim.item.id).state is ItemState.done
    assert store.claim_next("n1") is None
    with pytest.raises(UnknownId):
        store.cancel_item(99999)


def test_retry_failed_and_cancelled(store):
    job = store.add_job(cfg(count=2, seed=1))
    for _ in range(2):
        claim = store.claim_next("n1")
        store.mark_running(claim.item.id, claim.lease)
        store.fail(claim.item.id, claim.lease, "bad")
    assert store.retry_failed(job.id) == 2
    items = store.reads.items(job.id)
    assert all(i.state is ItemState.queued and i.attempts == 0 and i.error is None for i in items)
    store.cancel_item(items[0].id)
    assert store.retry(items[0].id)
    assert not store.retry(items[0].id), "only failed/cancelled items retry"
    assert len(drain(store)) == 2


def test_clear_finished_keeps_unfinished_and_failed_jobs(store):
    done = store.add_job(cfg("done", seed=1))
    drain(store)
    failed = store.add_job(cfg("failed", seed=1))
    claim = store.claim_next("n1")
    store.mark_running(claim.item.id, claim.lease)
    store.fail(claim.item.id, claim.lease, "bad")
    waiting = store.add_job(cfg("waiting", seed=1))
    cancelled = store.add_job(cfg("cancelled", seed=1))
    store.cancel_job(cancelled.id)
    assert store.clear_finished() == 2
    assert {j.id for j in store.reads.list_jobs()} == {failed.id, waiting.id}
    assert store.reads.items(done.id) == [], "items go with their job"
    assert store.clear_finished(include_failed=True) == 1


def test_recover_puts_in_flight_items_back_and_keeps_done(store):
    store.add_job(cfg(count=3, seed=1))
    first = store.claim_next("n1")
    store.mark_running(first.item.id, first.lease)
    store.complete(first.item.id, first.lease, ["a.png"])
    running = store.claim_next("n1")
    store.mark_running(running.item.id, running.lease)
    assigned = store.claim_next("n1")
    recovered = store.recover()
    assert {i.id for i in recovered} == {running.item.id, assigned.item.id}
    states = store.reads.item_states([first.item.id, running.item.id, assigned.item.id])
    assert [s for s, _ in states.values()] == [ItemState.done, ItemState.queued, ItemState.queued]
    assert not store.complete(running.item.id, running.lease, ["stale.png"]), "old lease is void"


def test_release_gives_an_item_back_without_counting_an_attempt(store):
    store.add_job(cfg(seed=1))
    claim = store.claim_next("n1")
    assert store.release(claim.item.id, claim.lease)
    item = store.reads.get_item(claim.item.id)
    assert item.state is ItemState.queued and item.attempts == 0


def test_claim_respects_node_pin_and_a_schedulers_filter(store):
    pinned = store.add_job(cfg("pinned", seed=1), node_pin="laptop", priority=10)
    free = store.add_job(cfg("free", count=2, seed=1))
    claim = store.claim_next("big", can_take=lambda item, job: item.index == 1)
    assert claim.item.label == f"{free.id}/2"
    assert store.claim_next("laptop").item.job_id == pinned.id


def test_resolve_accepts_id_prefixes_and_image_numbers(store):
    job = store.add_job(cfg(count=2, seed=1))
    assert store.reads.resolve(job.id) == ("job", job.id)
    assert store.reads.resolve(job.id[:5]) == ("job", job.id)
    kind, item_id = store.reads.resolve(f"{job.id}/2")
    assert kind == "item" and store.reads.get_item(item_id).index == 1
    for bad in ("zzzz", f"{job.id}/0", f"{job.id}/9", f"{job.id}/x", "%"):
        with pytest.raises(UnknownId):
            store.reads.resolve(bad)


def test_revision_moves_only_on_real_changes(store):
    start = store.reads.revision()
    assert store.claim_next("n1") is None
    assert store.reads.revision() == start
    store.add_job(cfg(seed=1))
    assert store.reads.revision() == start + 1


def test_report_and_eta(store):
    job = store.add_job(cfg(count=3, seed=1))
    claim = store.claim_next("n1", now=100.0)
    store.mark_running(claim.item.id, claim.lease, now=100.0)
    store.complete(claim.item.id, claim.lease, ["a.png"], now=102.0)
    report = store.reads.report()
    assert (report.jobs, report.counts.done, report.counts.queued) == (1, 1, 2)
    assert report.seconds_per_item == pytest.approx(2.0)
    assert store.reads.list_jobs()[0].eta_seconds == pytest.approx(4.0)
    assert store.reads.get_job(job.id).state is JobState.running


def test_eta_follows_throughput_when_images_overlap(store):
    job = store.add_job(cfg(count=12, seed=1))
    # Four lanes: each image takes 8 s, but one finishes every 2 s.
    for k in range(8):
        claim = store.claim_next("n1", now=100.0 + 2 * k, start=True)
        store.complete(claim.item.id, claim.lease, ["x"], now=108.0 + 2 * k)
    assert store.reads.seconds_per_item() == pytest.approx(2.0)
    assert store.reads.get_job(job.id).counts.queued == 4
    assert store.reads.list_jobs()[0].eta_seconds == pytest.approx(8.0)


def test_eta_ignores_the_time_the_queue_sat_idle(store):
    """A row once said 44 s for 6 s of work: an earlier session's finishes, hours apart, were
    taken for the pace."""
    store.add_job(cfg(count=3, seed=1))
    for k in range(3):  # yesterday: three images, two seconds each, an hour apart
        claim = store.claim_next("n1", now=100.0 + 3600 * k, start=True)
        store.complete(claim.item.id, claim.lease, ["x"], now=102.0 + 3600 * k)
    job = store.add_job(cfg(count=6, seed=1))
    for k in range(3):  # today: one image a second
        claim = store.claim_next("n1", now=90000.0 + k, start=True)
        store.complete(claim.item.id, claim.lease, ["x"], now=90001.0 + k)
    assert store.reads.seconds_per_item() == pytest.approx(1.0)
    assert store.reads.get_job(job.id).counts.queued == 3
    assert [j.eta_seconds for j in store.reads.list_jobs() if j.id == job.id] == [pytest.approx(3.0)]


def test_output_names_are_unique_per_item_and_never_a_prefix_of_another():
    names = [item_name_prefix("abcd1234", i) for i in range(2000)]
    assert len(set(names)) == 2000
    assert not any(a != b and b.startswith(a) for a, b in zip(names, names[1:], strict=False))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["claim", "run", "done", "fail", "transient", "cancel",
                                 "retry", "recover", "release"]), max_size=40),
       st.integers(0, 2**16))
def test_any_sequence_of_operations_keeps_every_item_in_one_legal_state(tmp_path_factory, ops,
                                                                          seed):
    rng = random.Random(seed)
    store = QueueStore(tmp_path_factory.mktemp("q") / "q.db")
    try:
        job = store.add_job(cfg(count=4, seed=1))
        claims = []
        seen: dict[int, ItemState] = {i.id: i.state for i in store.reads.items(job.id)}
        for op in ops:
            if op == "claim" and (c := store.claim_next("n", now=1e12)):
                claims.append(c)
            elif claims and op in ("run", "done", "fail", "transient", "release"):
                c = rng.choice(claims)
                if op == "run":
                    store.mark_running(c.item.id, c.lease)
                elif op == "done":
                    store.complete(c.item.id, c.lease, ["x"])
                elif op == "release":
                    store.release(c.item.id, c.lease)
                else:
                    store.fail(c.item.id, c.lease, "e", transient=op == "transient")
            elif op == "cancel":
                store.cancel_item(rng.choice(list(seen)))
            elif op == "retry":
                store.retry(rng.choice(list(seen)))
            elif op == "recover":
                store.recover()
            for item in store.reads.items(job.id):
                before = seen[item.id]
                assert item.state == before or can_move(before, item.state), (before, item)
                if before is ItemState.done:
                    assert item.state is ItemState.done
                seen[item.id] = item.state
        assert store.reads.integrity_ok()
    finally:
        store.close()


def test_per_image_configs_wraps_fixed_seeds():
    configs = list(per_image_configs(cfg(count=2, seed=2**32 - 1)))
    assert [c.txt2img.seed for c in configs] == [2**32 - 1, 0]
