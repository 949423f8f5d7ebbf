from __future__ import annotations

import argparse
import zipfile

from stablenew.cli import learning as learning_cli
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from tests.learning.helpers import image_record, synthetic_records


def main(argv: list[str]) -> int:
    """`stablenew` with only this room's command: other rooms' commands (in progress in the
    same tree) cannot break these tests."""
    parser = argparse.ArgumentParser(prog="stablenew")
    learning_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_the_command_is_discovered_by_the_cli():
    import pkgutil

    import stablenew.cli

    assert "learning" in {m.name for m in pkgutil.iter_modules(stablenew.cli.__path__)}


def test_insights_recommend_and_summary_on_the_default_database(capsys):
    with LearningStore() as store:
        store.add_records(synthetic_records(150, packs=("Portraits",)))
    assert main(["learning", "summary"]) == 0
    assert "150 records" in capsys.readouterr().out
    assert main(["learning", "insights", "--pack", "Portraits", "--values"]) == 0
    out = capsys.readouterr().out
    assert "For Portraits, 30–35 steps scores higher than 15–20" in out
    assert "35 steps" in out and "(conclusive)" in out
    assert main(["learning", "recommend", "--pack", "Portraits", "--save", "Learned portraits"]) == 0
    captured = capsys.readouterr()
    assert "steps:" in captured.out and "Saved as" in captured.err
    assert main(["learning"]) == 2


def test_rate_and_export_through_the_command(tmp_path, capsys):
    db = tmp_path / "db.sqlite"
    image = image_record(tmp_path / "out", 0)
    with LearningStore(db) as store:
        store.add_record(LearningRecord.from_image_record(image))
    assert main(["learning", "--db", str(db), "rate", str(image.path), "4", "--tag", "blurry"]) == 0
    assert "4 stars, tags: blurry" in capsys.readouterr().out
    assert main(["learning", "--db", str(db), "rate", str(tmp_path / "nope.png"), "3"]) == 1
    assert "no learning record" in capsys.readouterr().err
    out = tmp_path / "bundle.zip"
    assert main(["learning", "--db", str(db), "export", str(out), "--copies"]) == 0
    assert "Exported 1 record, 1 image copy" in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        assert "images/1.jpg" in zf.namelist()


def test_summary_says_the_learning_mode_in_settings(capsys):
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, LearningMode, save_settings

    save_settings(AppPaths.default(), AppSettings(learning_mode=LearningMode.off))
    assert main(["learning", "summary"]) == 0
    assert "Learning mode: off (new images are not recorded)" in capsys.readouterr().out


def test_insights_and_recommend_print_json_for_scripts(tmp_path, capsys):
    import json

    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        store.add_records(synthetic_records(150, packs=("Portraits",)))
    assert main(["learning", "--db", str(db), "insights", "--pack", "Portraits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pack"] == "Portraits" and data["rated"] == 150
    steps = next(p for p in data["parameters"] if p["parameter"] == "steps")
    assert steps["conclusive"] and steps["best_values"] == ["30", "35"]
    assert [v["value"] for v in steps["values"]] == ["15", "20", "25", "30", "35"]
    assert set(steps["values"][0]) == {"value", "label", "n", "mean", "low", "high"}
    assert data["lines"][0] == steps["summary"]

    assert main(["learning", "--db", str(db), "recommend", "--pack", "Portraits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pack"] == "Portraits" and data["saved"] is None
    assert [c["parameter"] for c in data["changes"]] == ["steps"]
    assert data["preset"] == {"txt2img": {"steps": int(data["changes"][0]["value"])}}

    assert main(["learning", "--db", str(db), "recommend", "--pack", "Nothing", "--json"]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and "no images of a pack named 'Nothing'" in printed.err


def test_a_misspelt_pack_is_refused_with_the_packs_there_are(tmp_path, capsys):
    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        store.add_records(synthetic_records(40, packs=("Portraits", "")))
    for verb in ("insights", "recommend", "next", "taste", "report"):
        assert main(["learning", "--db", str(db), verb, "--pack", "Portrats"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: There are no images of a pack named 'Portrats'. Packs with "
                              "images: '' (images without a pack), 'Portraits'."), (verb, err)
    assert main(["learning", "--db", str(db), "taste", "--pack", ""]) == 0
    assert "in pack" not in capsys.readouterr().out


def test_recommend_says_how_sure_each_value_is(tmp_path, capsys):
    import json

    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        store.add_records(synthetic_records(150, packs=("Portraits",)))
    assert main(["learning", "--db", str(db), "recommend", "--pack", "Portraits", "--json"]) == 0
    change = json.loads(capsys.readouterr().out)["changes"][0]
    assert change["parameter"] == "steps" and 0.5 < change["confidence"] <= 1.0
    assert main(["learning", "--db", str(db), "recommend", "--pack", "Portraits"]) == 0
    assert f"# Steps: {change['value']} ({change['confidence']:.0%} sure) — " in capsys.readouterr().out


def test_next_says_what_to_run_and_queues_it_as_a_learning_run(tmp_path, capsys):
    import json

    from stablenew.cluster.jobs import JobKind
    from stablenew.cluster.queue_store import QueueStore

    db = tmp_path / "db.sqlite"
    assert main(["learning", "--db", str(db), "next"]) == 0
    assert capsys.readouterr().out == ("No rated images yet. A 9-image run at 20, 25 and 30 steps "
                                       "is a good start.\n")
    assert main(["learning", "--db", str(db), "next", "--queue"]) == 1
    assert "--base" in capsys.readouterr().err

    with LearningStore(db) as store:
        store.add_records(synthetic_records(60, packs=("Portraits",)))
    assert main(["learning", "--db", str(db), "next", "--pack", "Portraits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["images"] == 9 and len(data["values"]) == 3 and data["queued"] is None
    assert data["text"].startswith(data["evidence"])

    out = tmp_path / "images"
    assert main(["learning", "--db", str(db), "next", "--pack", "Portraits", "--queue",
                 "--output", str(out), "--json"]) == 0
    queued = json.loads(capsys.readouterr().out)["queued"]
    with QueueStore(db) as queue:
        job = queue.reads.get_job(queued["job"])
        items = queue.reads.items(job.id)
        assert job.kind is JobKind.learning and job.origin.learning_run_id == queued["learning_run"]
        assert len(items) == 9 and job.origin.pack == "Portraits"
        configs = [queue.reads.config_for(item) for item in items]
    # The base is the pack's best-rated image: its prompt, with the chosen setting varied.
    assert {c.txt2img.prompt for c in configs} == {"portrait of a woman"}
    with LearningStore(db) as store:
        run = store.load_run(queued["learning_run"])
    assert run["state"] == "running" and run["job_id"] == queued["job"]
    assert run["parameter"] == data["parameter"]


def test_choose_keeps_a_side_by_side_choice(tmp_path, capsys):
    db = tmp_path / "db.sqlite"
    a, b = image_record(tmp_path / "out", 0), image_record(tmp_path / "out", 1)
    with LearningStore(db) as store:
        store.add_records([LearningRecord.from_image_record(a), LearningRecord.from_image_record(b)])
    assert main(["learning", "--db", str(db), "choose", str(b.path), str(a.path)]) == 0
    assert capsys.readouterr().out == f"Kept: {b.path} is better than {a.path}.\n"
    assert main(["learning", "--db", str(db), "choose", "1", "2", "--same"]) == 0
    assert "equally good" in capsys.readouterr().out
    assert main(["learning", "--db", str(db), "choose", "1", "1"]) == 1
    assert "cannot be compared with itself" in capsys.readouterr().err
    with LearningStore(db) as store:
        assert [(c.winner_path, c.same) for c in store.choices()] == [(str(b.path), False),
                                                                       (str(a.path), True)]


def test_taste_prints_each_settings_effect_with_its_uncertainty(tmp_path, capsys):
    import json

    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        store.add_records(synthetic_records(150, packs=("Portraits",)))
    assert main(["learning", "--db", str(db), "taste", "--pack", "Portraits"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("From 150 ratings and 0 choices in pack 'Portraits':\n")
    assert "- Steps: best 3" in out and "stars between best and worst" in out
    assert "    15 steps" in out and " ± " in out
    assert main(["learning", "--db", str(db), "taste", "--pack", "Portraits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    steps = next(p for p in data["parameters"] if p["parameter"] == "steps")
    assert [b["values"] for b in steps["bins"]] == [["15"], ["20"], ["25"], ["30"], ["35"]]
    assert steps["best"] in ("30", "35") and all(b["sd"] > 0 for b in steps["bins"])
