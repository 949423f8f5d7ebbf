"""A window's session without the window, pressing Run once: `python -m tests.queue.session_run`.

The crash test kills this process mid-Run. The server comes from the settings under
STABLENEW_HOME; the Run waits for every room (learning included) so each image is recorded.
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

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(start_up())
    values = {"txt2img.prompt": "a crashed run", "txt2img.steps": 4, "txt2img.batch_count": count,
              "txt2img.width": 64, "txt2img.height": 64, "txt2img.sampler": "Euler a",
              "txt2img.scheduler": "Automatic"}

    def press_run() -> None:
        if not session.rooms_ready:
            QTimer.singleShot(10, press_run)
            return
        if not session.pipeline.run(values):
            print("Run did not start", file=sys.stderr, flush=True)
            app.exit(2)
        print("running", flush=True)

    session.start()
    QTimer.singleShot(0, press_run)
    with loop:
        loop.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
