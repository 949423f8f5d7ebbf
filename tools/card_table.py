"""Writes controller/cards.py: the stage cards' fields as plain data, read from the pipeline models.

The window paints its cards from that file, before pydantic and the models load (start-up is
measured to the first paint). Run `make cards` after changing a pipeline model's fields;
tests/gui/test_card_table.py fails while the file is out of date.

    .venv/bin/python -m tools.card_table
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stablenew.controller.field_spec import FieldSpec

TABLE = Path(__file__).resolve().parents[1] / "stablenew" / "controller" / "cards.py"

HEADER = '''"""The stage cards' fields, ready-made so the window can paint them before pydantic loads.

Generated from the pipeline models by `make cards` (tools/card_table.py): do not edit.
tests/gui/test_card_table.py fails when this file is out of date.
"""

from stablenew.controller.field_spec import FieldSpec

'''

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FieldSpec)
             if f.default is not dataclasses.MISSING}


def _spec(spec: FieldSpec) -> str:
    parts = []
    for field in dataclasses.fields(FieldSpec):
        value = getattr(spec, field.name)
        if field.name in _DEFAULTS and value == _DEFAULTS[field.name]:
            continue
        parts.append(f"{field.name}={value!r}")
    return f"        FieldSpec({', '.join(parts)}),\n"


def render() -> str:
    """The text cards.py must have, from the models as they are now."""
    from stablenew.controller.pipeline_controller import PipelineController

    controller = PipelineController(None, Path)
    sections = controller.sections()
    lines = [HEADER, "#: card section → its fields, in the order the card shows them\n",
             "SECTIONS: dict[str, tuple[FieldSpec, ...]] = {\n"]
    for name, specs in sections.items():
        lines.append(f"    {name!r}: (\n")
        lines.extend(_spec(spec) for spec in specs)
        lines.append("    ),\n")
    lines.append("}\n\n")
    pickers = sorted(spec.path for specs in sections.values() for spec in specs
                     if controller.is_picker(spec.path))
    lines.append("#: fields whose choices come from the connected server (a picker, not a text box)\n")
    lines.append("PICKERS = frozenset({\n")
    lines.extend(f"    {path!r},\n" for path in pickers)
    lines.append("})\n")
    controller.deleteLater()
    return "".join(lines)


def main() -> None:
    text = render()
    if TABLE.exists() and TABLE.read_text(encoding="utf-8") == text:
        print(f"{TABLE} is up to date")
        return
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
