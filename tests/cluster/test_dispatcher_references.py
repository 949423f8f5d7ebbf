"""Reference pictures in a cluster: only a node with ControlNet gets the work that needs it."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.nodes import NodeConfig
from tests.cluster.test_dispatcher import TXT2IMG, cfg, dispatcher, fakes, node

CANNY_SD15 = "control_v11p_sd15_canny [d14c016b]"


async def test_reference_work_goes_only_to_the_node_that_has_controlnet(store, tmp_path):  # noqa: F811
    # Seen in the window: a Forge and a plain A1111 (no extension) side by side, four images
    # with a reference picture: the two sent to the A1111 failed instead of waiting for the Forge.
    picture = tmp_path / "edges.png"
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 10, 10)).save(buf, format="PNG")
    picture.write_bytes(buf.getvalue())
    config = cfg(4).with_changes({"txt2img.references": [{"image": str(picture), "kind": "canny"}]})
    async with fakes({"step_ms": 2, "flavor": "forge", "controlnet_models": (CANNY_SD15,)},
                     {"step_ms": 1}) as (forge, attic):
        store.add_job(config, output_dir=tmp_path / "out")
        d = dispatcher(store, [NodeConfig(name="forge-pc", url=forge.url, kind="forge"),
                               node("attic", attic)])
        await asyncio.wait_for(d.run(until_empty=True), 30)
    items = store.reads.items()
    assert [i.state for i in items] == [ItemState.done] * 4, [(i.node, i.error) for i in items]
    assert {i.node for i in items} == {"forge-pc"}
    assert attic.requests_to(TXT2IMG) == []
