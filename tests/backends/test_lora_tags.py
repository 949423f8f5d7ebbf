"""LoRA tags are read as A1111 reads them, in every room: `<lyco:…>` is a LoRA, named fields
override positional ones, and a weight that is no number is said, not guessed."""

from __future__ import annotations

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from stablenew.backends.comfyui_names import split_loras
from stablenew.backends.lora_tags import lora_names, lora_tags, lora_weights, swap_lora
from stablenew.catalog.entry import ModelEntry, ModelKind
from stablenew.catalog.prompt import insert_lora
from stablenew.cluster.work import requirements_for
from stablenew.gallery.metadata import read_facts
from stablenew.learning.parameters import set_lora_weight
from stablenew.pipeline.config import PipelineConfig


def _weights(prompt: str) -> list[tuple[str, float, float]]:
    return [(t.name, t.weight, t.unet_weight) for t in lora_tags(prompt)]


def test_weights_as_a1111_reads_them():
    assert _weights("<lora:a> <lora:b:0.5> <LyCO:c:0.7:0.3> <lora:d:unet=0.8> "
                    "<lora:e:te=0.2:0.9> <lora:f:0.6:0.4:8>") == [
        ("a", 1.0, 1.0),
        ("b", 0.5, 0.5),
        ("c", 0.7, 0.3),
        ("d", 1.0, 0.8),  # only the UNet's weight named: the text encoder keeps 1.0
        ("e", 0.2, 0.2),  # the named te wins over the positional 0.9; the UNet follows it
        ("f", 0.6, 0.4),  # the fourth field is LyCORIS's dyn, not a weight
    ]
    (bad,) = lora_tags("<lora:g:strong>")
    assert (bad.weight, bad.bad) == (1.0, "strong")
    (inf,) = lora_tags("<lora:h:inf>")
    assert inf.bad == "inf"


def test_hypernetworks_are_not_loras_and_names_come_once_in_order():
    prompt = "a fox, <lora:neon:0.5>, <hypernet:h:1>, <lyco:film:0.3>, <lora:neon:0.6>"
    assert lora_names(prompt) == ["neon", "film"]
    assert lora_weights(prompt) == {"neon": 0.6, "film": 0.3}


def test_swap_finds_the_tag_in_any_case_and_either_spelling():
    text, found = swap_lora("a fox, <LYCO:Neon:0.3>, x", "neon", "<lora:neon:0.8>")
    assert (text, found) == ("a fox, <lora:neon:0.8>, x", True)
    assert swap_lora("a fox", "neon", "<lora:neon:1>") == ("a fox", False)


def test_comfyui_gets_the_unet_weight_a_named_field_gives():
    _, loras, warnings = split_loras("a fox <lora:d:unet=0.8> <lora:g:strong>")
    assert [(u.name, u.text_encoder_weight, u.unet_weight) for u in loras] == [
        ("d", 1.0, 0.8), ("g", 1.0, 1.0)]
    assert warnings == ["LoRA weight 'strong' of g is not a number; used 1 for the text encoder "
                        "and 1 for the UNet."]


def test_a_lyco_tag_is_a_lora_the_node_must_have():
    config = PipelineConfig().with_changes({"txt2img.prompt": "a fox, <lyco:film_grain:0.6>",
                                            "txt2img.negative_prompt": "<lora:bad_hands:1>"})
    assert requirements_for(config).loras == frozenset({"film_grain", "bad_hands"})


def test_rooms_that_change_a_loras_weight_change_a_lyco_tag_rather_than_add_a_second():
    entry = ModelEntry(ModelKind.lora, "/loras/film.safetensors", "film", "film", "Film")
    assert insert_lora("a fox, <lyco:film:0.3>", entry, 0.7, triggers=[]) == "a fox, <lora:film:0.7>"
    assert set_lora_weight("a fox, <lyco:film:0.3>", "film", 0.9) == "a fox, <lora:film:0.9>"


def test_the_gallery_lists_lyco_loras_of_an_image(tmp_path):
    png = tmp_path / "a.png"
    info = PngInfo()
    info.add_text("parameters", "a fox, <lyco:film:0.3>, <lora:neon:1>\n"
                                "Steps: 20, Sampler: Euler, Seed: 1, Size: 8x8")
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    assert read_facts(png).loras == ("film", "neon")
