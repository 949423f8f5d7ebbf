"""Property test: whatever sequence of writes, the trigger-kept aggregates equal a full GROUP BY."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord, RunTags

_CONFIGS = [PipelineConfig().with_changes({"txt2img.steps": s, "txt2img.sampler": m})
            for s in (10, 20) for m in ("Euler", "DDIM")]

_op = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 7), st.integers(0, 3), st.sampled_from(["A", "B", None])),
    st.tuples(st.just("rate"), st.integers(0, 7), st.one_of(st.none(), st.integers(1, 5))),
    st.tuples(st.just("tag"), st.integers(0, 7), st.sampled_from(["noisy", "blurry"]), st.booleans()),
    st.tuples(st.just("delete"), st.integers(0, 7)),
)


def _record(key: int, config: int, pack: str | None) -> LearningRecord:
    image = ImageRecord(run_id="p", image_index=key, config=_CONFIGS[config], seed=key,
                        stages=("txt2img",), node="n", node_kind="a1111", path=Path(f"{key}.png"),
                        tags=RunTags(pack=pack))
    return LearningRecord.from_image_record(image, now=1.0)


def _table(rows):
    return sorted((s.param, s.value, s.n, s.total, s.total_sq) for s in rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, max_size=30))
def test_aggregates_always_match_the_records(ops):
    with LearningStore(":memory:") as store:
        for op in ops:
            key = f"p:{op[1]}"
            try:
                if op[0] == "add":
                    store.add_record(_record(op[1], op[2], op[3]))
                elif op[0] == "rate":
                    store.rate(key, op[2])
                elif op[0] == "tag":
                    store.tag(key, op[2], on=op[3])
                else:
                    store.delete(key)
            except LookupError:
                pass
            except Exception as exc:  # only "no such record" is expected
                assert "no learning record" in str(exc), exc
        for pack in (None, "A", "B", ""):
            assert _table(store.stats(pack)) == _table(store.stats_from_scratch(pack))
        truth = {}
        for record in store.records():
            for tag in record.tags:
                truth[tag] = truth.get(tag, 0) + 1
        assert store.tag_counts() == dict(sorted(truth.items(), key=lambda kv: (-kv[1], kv[0])))
