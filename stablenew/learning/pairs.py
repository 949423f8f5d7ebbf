"""Pairs for "which is better?": two images of a pack worth comparing, and keeping the answer.

A pair is most informative when the two images differ in the setting the next experiment is
about (CFG 6 against CFG 10), so that setting's values are tried first; a pair already
compared is not shown again while others are left. The images are shown without their
settings, so the choice is about the pictures alone.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.learning.errors import RecordNotFound

if TYPE_CHECKING:
    from stablenew.learning.choices import Choice
    from stablenew.learning.store import LearningStore

RECENT = 500  # images of the pack a pair is drawn from, newest first
TRIES = 40

Ref = int | str | os.PathLike[str]


@dataclass(frozen=True)
class ImagePair:
    """Two recorded images to show side by side (left, right)."""

    left_id: int
    right_id: int
    left_path: str
    right_path: str
    parameter: str | None = None  # the setting they differ in, when chosen for one
    left_value: str = ""
    right_value: str = ""


def pick_pair(store: LearningStore, pack: str | None, parameter: str | None = None,
              rng: random.Random | None = None, skip: frozenset[int] = frozenset()
              ) -> ImagePair | None:
    """Two images of *pack* (None: any) whose files exist, preferably differing in *parameter*
    and not compared before, leaving out the records in *skip* (files found unreadable);
    None when there are fewer than two. Reads the disk: call off the Qt thread."""
    rng = rng or random.Random()
    sql = ("SELECT r.id, r.path, COALESCE(p.value, '') FROM learning_records r "
           "LEFT JOIN learning_params p ON p.record_id = r.id AND p.param = ?")
    args: list[str | int] = [parameter or ""]
    if pack is not None:
        sql += " WHERE r.pack = ?"
        args.append(pack)
    rows = [(int(r[0]), str(r[1]), str(r[2]))
            for r in store.execute(sql + " ORDER BY r.id DESC LIMIT ?", [*args, RECENT])]
    images = [r for r in rows if r[0] not in skip and Path(r[1]).is_file()]
    if len(images) < 2:
        return None
    done = {frozenset((c.winner_id, c.loser_id)) for c in store.choices(pack)}
    groups: dict[str, list[tuple[int, str, str]]] = {}
    for image in images:
        groups.setdefault(image[2], []).append(image)
    candidates: list[tuple[tuple[int, str, str], tuple[int, str, str]]] = []
    for _ in range(TRIES):
        if parameter and len(groups) >= 2:
            first, second = rng.sample(sorted(groups), 2)
            pair = (rng.choice(groups[first]), rng.choice(groups[second]))
        else:
            a, b = rng.sample(images, 2)
            pair = (a, b)
        if frozenset((pair[0][0], pair[1][0])) not in done:
            candidates.append(pair)
            break
    if not candidates:  # everything nearby was compared: compare again rather than nothing
        a, b = rng.sample(images, 2)
        candidates.append((a, b))
    left, right = candidates[0]
    differ = parameter if parameter and left[2] != right[2] else None
    return ImagePair(left[0], right[0], left[1], right[1], differ,
                     left[2] if differ else "", right[2] if differ else "")


def record_choice_of_files(store: LearningStore, winner: Ref, loser: Ref, *, same: bool = False,
                           source: str = "") -> Choice:
    """`store.record_choice`, but an image StableNew made while learning was off is recorded
    from its own PNG metadata first (as a rating of it would be). RecordNotFound when an
    image has no StableNew settings in it."""
    from stablenew.learning.rebuild import record_image_file

    for ref in (winner, loser):
        try:
            store.find_id(ref)
        except RecordNotFound:
            if isinstance(ref, int) or not Path(ref).is_file():
                raise
            record_image_file(store, Path(ref), refused="a choice about it cannot be kept for learning")
    return store.record_choice(winner, loser, same=same, source=source)
