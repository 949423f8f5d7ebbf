"""The wheel ships every package and the shipped resources."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_on_disk_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "stablenew").rglob("__init__.py")
    }
    on_disk.add("stablenew.resources")
    missing = on_disk - listed
    assert not missing, f"add these packages to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_resources_resolve_through_the_installed_package():
    from stablenew.storage.resources import resource_path

    assert resource_path().is_dir()
    assert (resource_path() / "__init__.py").exists()
