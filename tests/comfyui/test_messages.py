"""Pure tests on ComfyUI's recorded real responses: history outcomes, errors, frames, progress."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from stablenew.backends.comfyui_messages import (
    PREVIEW_IMAGE,
    PREVIEW_IMAGE_WITH_METADATA,
    ProgressTracker,
    execution_error_to_error,
    history_outcome,
    node_errors_to_error,
    parse_binary_frame,
    post_prompt_error,
)
from stablenew.backends.errors import (
    AuthFailed,
    JobInterrupted,
    MissingResource,
    ProtocolError,
    RequestRejected,
    ServerError,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "comfyui"


def recorded(name: str):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_recorded_success_history_is_a_success():
    history = recorded("resp_history_prompt_id.json")
    ((pid, item),) = history.items()
    assert history_outcome(item, "den") is None
    assert item["outputs"]["3"]["images"][0] == {
        "filename": "basic_00003_.png",
        "subfolder": "probe",
        "type": "output",
    }


def test_recorded_interrupted_history_is_job_interrupted():
    ((pid, item),) = recorded("resp_history_interrupted.json").items()
    err = history_outcome(item, "den")
    assert isinstance(err, JobInterrupted)
    assert "ColorTransfer" in err.detail


def test_recorded_cancelled_job_status_reads_the_same_way():
    job = recorded("resp_api_jobs_id_cancelled.json")
    assert isinstance(history_outcome({"status": job["execution_status"]}, "den"), JobInterrupted)


EXECUTION_ERROR = {
    "prompt_id": "ea29bc59-0000-4000-8000-000000000000",
    "node_id": "2",
    "node_type": "ImageToMask",
    "executed": ["1"],
    "exception_message": "index 3 is out of bounds for dimension 3 with size 3\n",
    "exception_type": "IndexError",
    "traceback": ['  File ".../ComfyUI/execution.py", line 545, in execute\n'],
    "current_inputs": {"image": ["tensor([[[[0.8980, " + "0.1, " * 3000 + "]]]])"], "channel": ["alpha"]},
    "current_outputs": ["2", "3", "1", "4"],
    "timestamp": 1795211511108,
}


def test_execution_error_is_plain_and_has_no_tensor_dump():
    err = execution_error_to_error(EXECUTION_ERROR, "den-3060")
    assert isinstance(err, ServerError) and err.transient
    assert err.message == (
        "ComfyUI on node 'den-3060' failed in step ImageToMask (node 2): "
        "index 3 is out of bounds for dimension 3 with size 3"
    )
    assert "tensor(" not in err.message + err.detail
    assert "execution.py" in err.detail


def test_error_recorded_in_history_is_reported():
    item = {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_start", {}], ["execution_error", EXECUTION_ERROR]],
        },
    }
    err = history_outcome(item, "den")
    assert isinstance(err, ServerError) and "ImageToMask" in err.message


def test_value_not_in_list_for_a_checkpoint_names_what_is_installed():
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            "4": {
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "ckpt_name: 'x.safetensors' not in ['a.safetensors', 'b.safetensors']",
                        "extra_info": {
                            "input_name": "ckpt_name",
                            "input_config": [["a.safetensors", "b.safetensors"], {}],
                            "received_value": "x.safetensors",
                        },
                    }
                ],
                "dependent_outputs": ["9"],
                "class_type": "CheckpointLoaderSimple",
            }
        },
    }
    err = post_prompt_error(400, json.dumps(body).encode(), "den-3060")
    assert isinstance(err, MissingResource)
    assert err.message == (
        "Checkpoint 'x.safetensors' is not installed on node 'den-3060' — installed: "
        "a.safetensors, b.safetensors."
    )
    assert err.installed == ("a.safetensors", "b.safetensors") and err.what == "checkpoint"


def test_new_combo_layout_is_understood_too():
    node_errors = {
        "7": {
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "",
                    "extra_info": {
                        "input_name": "model_name",
                        "input_config": ["COMBO", {"options": ["4x.pth"]}],
                        "received_value": "2x.pth",
                    },
                }
            ],
            "class_type": "UpscaleModelLoader",
        }
    }
    err = node_errors_to_error(node_errors, "den")
    assert isinstance(err, MissingResource) and err.what == "upscaler" and err.installed == ("4x.pth",)


@pytest.mark.parametrize(
    "etype,message,details",
    [
        ("value_smaller_than_min", "Value 0 smaller than min of 1", "width"),
        ("required_input_missing", "Required input is missing", "height"),
        (
            "return_type_mismatch",
            "Return type mismatch between linked nodes",
            "width, received_type(IMAGE) mismatch input_type(INT)",
        ),
        (
            "custom_validation_failed",
            "Custom validation failed for node",
            "image - Invalid image file: nope.png",
        ),
    ],
)
def test_other_validation_errors_become_request_rejected(etype, message, details):
    node_errors = {
        "5": {
            "errors": [
                {
                    "type": etype,
                    "message": message,
                    "details": details,
                    "extra_info": {"input_name": details.split(",")[0]},
                }
            ],
            "class_type": "EmptyImage",
        }
    }
    err = node_errors_to_error(node_errors, "den")
    assert type(err) is RequestRejected
    assert "EmptyImage" in err.message and message in err.message and "den" in err.message


def test_missing_node_type_top_level_error():
    body = {
        "error": {
            "type": "missing_node_type",
            "message": "Node 'FaceDetailer' not found.",
            "details": "Node ID '#7'",
            "extra_info": {"node_id": "7", "class_type": "FaceDetailer", "node_title": "FaceDetailer"},
        },
        "node_errors": {},
    }
    err = post_prompt_error(400, json.dumps(body).encode(), "den")
    assert isinstance(err, MissingResource) and err.what == "node_class" and err.name == "FaceDetailer"


def test_plain_text_500_and_empty_403():
    err = post_prompt_error(500, b"500 Internal Server Error\n\nServer got itself in trouble", "den")
    assert isinstance(err, ServerError) and "HTTP 500" in err.message and "trouble" in err.detail
    err = post_prompt_error(403, b"", "den")
    assert isinstance(err, AuthFailed) and "Origin" in err.message and "--enable-cors-header" in err.message
    assert isinstance(post_prompt_error(404, b"<html>", "den"), ProtocolError)


def test_binary_frames_in_both_layouts():
    jpeg = b"\xff\xd8\xff\xe0fakejpeg"
    legacy = struct.pack(">II", PREVIEW_IMAGE, 1) + jpeg
    frame = parse_binary_frame(legacy)
    assert frame.image == jpeg and frame.mime == "image/jpeg" and frame.prompt_id is None
    png_frame = parse_binary_frame(struct.pack(">II", PREVIEW_IMAGE, 2) + b"\x89PNG")
    assert png_frame.mime == "image/png"
    meta = json.dumps(
        {
            "node_id": "3",
            "prompt_id": "p-1",
            "display_node_id": "3",
            "parent_node_id": None,
            "real_node_id": "3",
            "image_type": "image/png",
        }
    ).encode()
    with_meta = struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + b"\x89PNGdata"
    frame = parse_binary_frame(with_meta)
    assert (frame.image, frame.mime, frame.prompt_id, frame.node) == (b"\x89PNGdata", "image/png", "p-1", "3")
    big = struct.pack(">II", PREVIEW_IMAGE, 2) + b"x" * (8 * 1024 * 1024)
    assert len(parse_binary_frame(big).image) == 8 * 1024 * 1024
    assert parse_binary_frame(struct.pack(">II", 3, 1) + b"3hello") is None  # TEXT: no preview
    assert parse_binary_frame(b"\x00\x00") is None
    assert parse_binary_frame(struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, 999) + b"{}") is None


GRAPH = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {}},
    "2": {"class_type": "EmptyLatentImage", "inputs": {}},
    "3": {"class_type": "KSampler", "inputs": {"steps": 20}},
    "4": {"class_type": "KSampler", "inputs": {"steps": 10}},
    "5": {"class_type": "VAEDecode", "inputs": {}},
}


def test_progress_weights_sampler_steps_and_counts_steps_across_passes():
    t = ProgressTracker(GRAPH)
    t.cached(["1", "2"])
    assert 0 < t.fraction < 0.05
    t.executing("3")
    t.progress("3", 10, 20)
    assert t.step == 10 and t.total_steps == 30
    mid = t.fraction
    assert 0.3 < mid < 0.4
    t.progress("3", 20, 20)
    t.executing("4")
    t.progress("4", 5, 10)
    assert t.step == 25
    t.executing("5")
    snap = t.snapshot()
    assert snap.steps == 30 and 0.95 < snap.fraction < 1.0
    assert snap.eta_seconds is not None and snap.eta_seconds >= 0


def test_progress_never_goes_back_and_handles_advanced_samplers():
    graph = {
        "1": {
            "class_type": "KSamplerAdvanced",
            "inputs": {"steps": 20, "start_at_step": 0, "end_at_step": 12},
        },
        "2": {
            "class_type": "KSamplerAdvanced",
            "inputs": {"steps": 20, "start_at_step": 12, "end_at_step": 10000},
        },
    }
    t = ProgressTracker(graph)
    assert t.total_steps == 20
    t.progress("1", 12, 12)
    high = t.fraction
    t.executing("2")
    t.progress("2", 0, 8)
    assert t.fraction >= high
    t.progress("2", 8, 8)
    assert t.step == 20 and t.fraction == pytest.approx(1.0)


def test_progress_ignores_node_ids_outside_the_graph():
    t = ProgressTracker(GRAPH)
    t.executing("5:3")  # an expanded subgraph node
    t.progress("5:3", 1, 2)
    t.executing("3")
    t.progress("3", 20, 20)
    t.executing("9:1")
    assert t.step == 20 and 0 < t.fraction < 1
