"""A window's session without the window, starting one learning run:
`python -m tests.learning.session_learning_run`.

The crash test kills this process mid-run. The server and the Active learning mode come from
the settings under STABLENEW_HOME; the run starts once every room is open.
"""

from __future__ import annotations

import asyncio
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from stablenew.controller.app_controller import start_up
    from stablenew.controller.session import Session
    from stablenew.pipeline.config import PipelineConfig

    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(start_up())
    base = PipelineConfig().with_changes({
        "txt2img.prompt": "a crashed comparison", "txt2img.steps": 4, "txt2img.width": 64,
        "txt2img.height": 64, "txt2img.seed": 77, "txt2img.sampler": "Euler a",
        "txt2img.scheduler": "Automatic"})

    def start() -> None:
        if not session.rooms_ready:
            QTimer.singleShot(10, start)
            return
        if not session.learning.runs.start_learning_run("steps", "4, 5, 6, 7", images_per_value=3,
                                                   pack="Crash", base=base):
            print(f"learning run did not start: {session.learning.error}", file=sys.stderr,
                  flush=True)
            app.exit(2)
            return
        print(session.learning.runs.run_result.run_id, flush=True)

    session.start()
    QTimer.singleShot(0, start)
    with loop:
        loop.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
