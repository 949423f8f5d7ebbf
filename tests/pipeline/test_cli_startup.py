"""`stablenew run` sends its first request without paying first for what only comes later
(issue 18): the image libraries, the learning store, the prompt tools, and a cycle collector
walking every object start-up made, over and over."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from stablenew.cli import main

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
version: 1
txt2img:
  prompt: a fox
  width: 64
  height: 64
  steps: 2
  seed: 5
"""

#: Runs `stablenew ARGS…` and writes, when its first txt2img request goes out, the modules
#: loaded by then and the collections the cycle collector had run, to the file named first.
_NOTE_FIRST_REQUEST = r'''
import dataclasses, gc, json, sys
from importlib.abc import MetaPathFinder
from importlib.util import find_spec
from pathlib import Path

REPORT = Path(sys.argv.pop(1))


class NoteFirstRequest(MetaPathFinder):
    """Wraps the HTTP layer's request as it is first imported (nothing else is imported early)."""

    def find_spec(self, name, path=None, target=None):
        if name != "stablenew.backends.http":
            return None
        sys.meta_path.remove(self)
        spec = find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            send = module.HttpClient.request

            async def request(client, method, where, **kwargs):
                if where.endswith("/txt2img") and not REPORT.exists():
                    REPORT.write_text(json.dumps({
                        "modules": sorted(sys.modules),
                        "collections": sum(s["collections"] for s in gc.get_stats()),
                        "dataclasses": sorted(
                            f"{name}.{value.__name__}" for name, mod in list(sys.modules.items())
                            if name.startswith("stablenew") and mod is not None
                            for value in vars(mod).values()
                            if isinstance(value, type) and value.__module__ == name
                            and dataclasses.is_dataclass(value))}))
                return await send(client, method, where, **kwargs)

            module.HttpClient.request = request

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, NoteFirstRequest())
from stablenew.cli import main

raise SystemExit(main(sys.argv[1:]))
'''

#: Needed only once an image is back (decoding, saving, recording it) or by other commands.
HEAVY = ("PIL", "numpy", "dynamicprompts", "pyparsing", "PySide6", "ruamel", "statistics",
         "stablenew.learning", "stablenew.prompting",
         "stablenew.randomizer", "stablenew.pipeline.infotext", "stablenew.gui",
         "stablenew.controller",
         # Never needed: httpx's command-line client, which its package imports when present.
         "rich", "click", "pygments")


def test_first_request_goes_out_before_the_heavy_parts_are_loaded(sdwebui_thread, tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    report = tmp_path / "first-request.json"
    env = {**os.environ, "STABLENEW_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _NOTE_FIRST_REQUEST, str(report), "run", str(config), "--node",
         sdwebui_thread.url, "--kind", "a1111", "--out", str(tmp_path / "out"), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 1 and "1 image saved" in done.stderr  # the run is whole
    first = json.loads(report.read_text(encoding="utf-8"))
    early = [m for m in first["modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert early == [], f"imported before the first request: {early}"
    # With the collector running all along start-up it ran ~130 times by then (a fresh
    # interpreter that only imports httpx and posts: ~60); paused, then frozen, ~30.
    assert first["collections"] < 60, first["collections"]
    # Creating a dataclass costs ~4 M instructions on Python 3.11 (each generated method is
    # parsed and compiled on import), a NamedTuple a tenth of that: 60 of ours were made before
    # the first request, now 49. A small record only its own module reads can be a NamedTuple.
    assert len(first["dataclasses"]) <= 49, first["dataclasses"]


def test_the_collector_is_back_as_it_was_after_a_run(sdwebui_thread, tmp_path, capsys):
    config = tmp_path / "one.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    assert gc.isenabled()
    code = main(["run", str(config), "--node", sdwebui_thread.url, "--kind", "a1111",
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # A run that stops before it starts (bad address) gives the collector back too.
    assert main(["run", str(config), "--node", "ftp://nowhere"]) == 2
    assert gc.isenabled() and gc.get_freeze_count() == 0
