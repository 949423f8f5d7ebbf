"""Prompt styles as AUTOMATIC1111 keeps them in `styles.csv`, usable inside presets.

A style adds text to the prompt and the negative prompt. When the style's text holds the
placeholder `{prompt}`, the user's prompt goes exactly there; otherwise the style is appended
after a comma — the same rule as A1111's `merge_prompts`, so imported styles behave as users
know them.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from stablenew.storage.documents import DocumentError, read_document_text

PLACEHOLDER = "{prompt}"
REQUIRED_COLUMNS = ("name", "prompt")


class PromptStyle(BaseModel):
    """One named style: text merged into the prompt and the negative prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=200, title="Style name")
    prompt: str = Field("", title="Style prompt",
                        description="Added to your prompt; {prompt} marks where your prompt goes.")
    negative_prompt: str = Field("", title="Style negative prompt",
                                 description="Added to your negative prompt; {prompt} works here too.")

    def apply(self, prompt: str, negative_prompt: str) -> tuple[str, str]:
        """The prompt pair with this style merged in (unchanged when it is already there)."""
        return _merge_once(self.prompt, prompt), _merge_once(self.negative_prompt, negative_prompt)


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A1111's rule: replace {prompt} in the style, else append the style after a comma."""
    if PLACEHOLDER in style_prompt:
        return style_prompt.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def _merge_once(style_prompt: str, prompt: str) -> str:
    # Applying the same preset twice must not stack its style twice in the prompt.
    fragments = [f.strip(" ,") for f in style_prompt.split(PLACEHOLDER)]
    fragments = [f for f in fragments if f]
    if not fragments or all(f in prompt for f in fragments):
        return prompt
    return merge_prompts(style_prompt, prompt)


def read_styles_csv(path: str | os.PathLike[str]) -> list[PromptStyle]:
    """Styles from an A1111 styles.csv; raises DocumentError naming the file and line."""
    file = Path(path)
    text = read_document_text(file)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DocumentError(
            file, f"This is not an A1111 styles file: the first line must name the columns "
            f"name, prompt, negative_prompt (missing: {', '.join(missing)}).", line=1)
    styles: dict[str, PromptStyle] = {}
    try:
        for row in reader:
            values = {(k or "").strip().lower(): (v or "") for k, v in row.items() if k is not None}
            name = values.get("name", "").strip()
            # A1111 writes a "None" row and "#"-prefixed rows as separators; neither is a style.
            if not name or name == "None" or name.startswith("#"):
                continue
            # A later row with the same name wins, as in A1111.
            styles[name] = PromptStyle(name=name, prompt=values.get("prompt", ""),
                                       negative_prompt=values.get("negative_prompt", ""))
    except csv.Error as exc:
        raise DocumentError(file, f"The CSV cannot be read: {exc}.", line=reader.line_num) from None
    except ValueError as exc:
        raise DocumentError(file, f"A style is not valid: {exc}", line=reader.line_num) from None
    return list(styles.values())


def write_styles_csv(path: str | os.PathLike[str], styles: list[PromptStyle]) -> Path:
    """Write styles in A1111's layout (atomically), so they can go back to the web UI."""
    from stablenew.storage.atomic import atomic_write_text

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "prompt", "negative_prompt"])
    for style in styles:
        writer.writerow([style.name, style.prompt, style.negative_prompt])
    return atomic_write_text(path, out.getvalue())


__all__ = ["PLACEHOLDER", "PromptStyle", "merge_prompts", "read_styles_csv", "write_styles_csv"]
