"""The node registry: owner-only file, credentials never in reprs or public dicts."""

from __future__ import annotations

import os
import stat

import pytest

from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.storage import AppPaths


def test_round_trip_keeps_credentials_in_an_owner_only_file():
    path = AppPaths.default().nodes_file
    registry = NodeRegistry.load(path)
    registry.add(NodeConfig(name="den-3060", url="http://127.0.0.1:7860/", username="me", password="s3cret",
                            tags=["sd15"], tier=2))
    registry.save()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = NodeRegistry.load(path)
    node = again.get("den-3060")
    assert node.url == "http://127.0.0.1:7860"
    assert node.auth == ("me", "s3cret")


def test_credentials_never_show_in_reprs_or_public_data():
    node = NodeConfig(name="n", url="http://x:1", username="me", password="s3cret")
    assert "s3cret" not in repr(node) and "s3cret" not in str(node.model_dump())
    public = node.public_dict()
    assert "password" not in public and "username" not in public


def test_duplicate_names_and_bad_urls_are_refused_plainly(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text("nodes:\n  - {name: a, url: 'http://x:1'}\n  - {name: A, url: 'http://y:1'}\n")
    registry = NodeRegistry.load(path)
    assert registry.error is not None and "Two nodes are called" in str(registry.error)
    with pytest.raises(ValueError, match="http://"):
        NodeConfig(name="b", url="x:1")


def test_a_broken_file_is_never_overwritten(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text("nodes: [\n")
    registry = NodeRegistry.load(path)
    assert registry.error is not None and registry.error.line is not None
    registry.add(NodeConfig(name="n", url="http://x:1"))
    with pytest.raises(Exception, match="broken"):
        registry.save()
    assert path.read_text() == "nodes: [\n"
