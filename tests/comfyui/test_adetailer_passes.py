"""ADetailer passes on ComfyUI: a pass switched off is left out of the graph, the others keep
their places (built against the recorded object_info of a real ComfyUI)."""

from __future__ import annotations

from stablenew.backends.comfyui_workflows import NodeCatalog, WorkflowBuilder, check_graph
from stablenew.backends.types import ADetailerJob, ADetailerPass
from tests.comfyui.test_workflows import by_class, png, real_info, sampling, with_models

__all__ = ["real_info"]  # the recorded object_info fixture, shared with test_workflows


def test_a_switched_off_pass_is_not_in_the_graph_and_later_passes_keep_their_seeds(real_info):
    info = with_models(real_info, face_detailer=True)
    info["UltralyticsDetectorProvider"]["input"]["required"]["model_name"] = [
        ["bbox/face_yolov8n.pt", "segm/person_yolov8n-seg.pt"]]
    builder = WorkflowBuilder(NodeCatalog("den", info))
    # The switched-off pass names a detector the node lacks: building must not even look it up.
    passes = (ADetailerPass(model="face_yolov8n.pt"),
              ADetailerPass(model="hand_missing.pt", enabled=False),
              ADetailerPass(model="person_yolov8n-seg.pt", denoise=0.2))
    wf = builder.adetailer(ADetailerJob(sampling(seed=1234), image=png(), task_id="a", passes=passes))
    check_graph(wf.nodes, builder.catalog)
    assert [d["model_name"] for d in by_class(wf.nodes, "UltralyticsDetectorProvider")] == [
        "bbox/face_yolov8n.pt", "segm/person_yolov8n-seg.pt"]
    details = by_class(wf.nodes, "FaceDetailer")
    assert [(d["seed"], d["denoise"]) for d in details] == [(1234, 0.4), (1236, 0.2)], \
        "the third pass has the third pass's seed, whether the second runs or not"
