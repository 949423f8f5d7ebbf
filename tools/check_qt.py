"""Before `make run` on Linux: can Qt's X11 (xcb) platform plugin load? If not, say what to install.

    python -m tools.check_qt          # exit 0: fine (or not Linux); exit 1: prints the apt command

Without these system libraries Qt aborts with "Could not load the Qt platform plugin xcb"
and a core dump, which tells a new user nothing. `ldd` lists every shared library the plugin
needs (its Qt libraries' needs too) and marks the absent ones "not found".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

#: Debian/Ubuntu package of each library the xcb plugin needs that desktops may lack.
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries `ldd` could not find, each once, in the order it listed them."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def advice(missing: list[str]) -> str:
    """What to tell the user: the exact install command, and any library we cannot name a package for."""
    packages = sorted({PACKAGES[lib] for lib in missing if lib in PACKAGES})
    unknown = [lib for lib in missing if lib not in PACKAGES]
    lines = ["StableNew cannot open its window yet: Qt's X11 plugin needs system libraries "
             f"that are missing ({', '.join(missing)})."]
    if packages:
        lines.append("On Debian or Ubuntu, install them with:")
        lines.append(f"    sudo apt install {' '.join(packages)}")
    if unknown:
        lines.append("Install the packages that provide: " + ", ".join(unknown)
                     + " (on Fedora: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms).")
    lines.append("Then run `make run` again.")
    return "\n".join(lines)


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, or None when this Qt has none."""
    try:
        import PySide6
    except ImportError:
        return None
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.exists() else None


def check(plugin: Path, ldd: str = "ldd") -> list[str]:
    """The libraries the plugin needs that cannot be found ([] when ldd itself is unavailable:
    then Qt's own message has to do)."""
    try:
        done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return missing_libraries(done.stdout + done.stderr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not sys.platform.startswith("linux"):
        return 0  # Windows and macOS wheels carry what their platform plugin needs
    wanted = os.environ.get("QT_QPA_PLATFORM", "")
    if wanted and not wanted.startswith("xcb"):
        return 0  # offscreen, wayland…: the xcb plugin is not used
    plugin = Path(args[0]) if args else xcb_plugin()
    if plugin is None:
        return 0
    missing = check(plugin)
    if missing:
        print(advice(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
