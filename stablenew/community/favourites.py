"""Favourite combos kept as a prompt pack, so they run again like any pack (with their LoRAs)."""

from __future__ import annotations

import os
from pathlib import Path

from stablenew.community.combos import Combo, combo_prompt
from stablenew.randomizer.packs import PackPrompt, PromptPack, load_pack, save_pack

FAVOURITES_FILE = "trending-favourites.yaml"
FAVOURITES_NAME = "Trending favourites"


def save_favourite(combo: Combo, packs_folder: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Add the combo's prompt (local LoRAs at the image's weights) and negative to the
    favourites pack in *packs_folder*; (the pack's path, False when it was there already).

    A favourites file that cannot be read raises DocumentError and is left as it is.
    """
    path = Path(packs_folder) / FAVOURITES_FILE
    entry = PackPrompt(prompt=combo_prompt(combo) or f"CivitAI image {combo.image.id}",
                       negative=combo.image.negative)
    if path.exists():
        pack, _wildcards = load_pack(path)
        if any(p.prompt == entry.prompt for p in pack.prompts):
            return path, False
        pack = pack.model_copy(update={"prompts": [*pack.prompts, entry]})
    else:
        pack = PromptPack(name=FAVOURITES_NAME, prompts=[entry], tags=["trending"],
                          description="Combos starred in the Trending tab (CivitAI).")
    return save_pack(pack, path), True
