"""Records rebuilt from the images a real run wrote (fake server, real runner)."""

from __future__ import annotations

import asyncio

from stablenew.learning.rebuild import rebuild_from_folder
from stablenew.learning.store import LearningStore
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.records import RunTags
from stablenew.pipeline.runner import PipelineRunner
from tests.learning.conftest import small_config
from tests.learning.helpers import write_png
from tests.learning.test_cli import main


async def test_a_lost_database_is_rebuilt_from_the_outputs(sd_backend, tmp_path, capsys):
    out = tmp_path / "out"
    runner = PipelineRunner(out)
    config = small_config(**{"txt2img.batch_count": 3, "txt2img.steps": 6})
    result = await asyncio.wait_for(runner.run(config, sd_backend, CancelToken(),
                                               tags=RunTags(pack="Foxes", preset="Fast")), 20)
    assert len(result.records) == 3
    write_png(out / "someone-elses.png")
    (out / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with LearningStore(tmp_path / "db.sqlite") as store:
        summary = rebuild_from_folder(store, out)
        assert (summary.scanned, summary.recorded, summary.skipped) == (5, 3, 2)
        assert len(summary.problems) == 1 and "broken.png" in summary.problems[0]
        by_key = {r.record_key: r for r in store.records()}
        for image in result.records:
            record = by_key[f"{image.run_id}:{image.image_index}"]
            assert record.config == image.config and record.seed == image.seed
            assert record.pack == "Foxes" and record.preset == "Fast"
            assert record.stages == image.stages
        store.rate(by_key[f"{result.run_id}:0"].id, 5)
    # Importing again (from the command) changes nothing and keeps the rating.
    assert main(["learning", "--db", str(tmp_path / "db.sqlite"), "import", str(out)]) == 0
    assert "Recorded 3 of 5 images; 2 skipped" in capsys.readouterr().out
    with LearningStore(tmp_path / "db.sqlite") as store:
        assert store.summary().records == 3 and store.summary().rated == 1
