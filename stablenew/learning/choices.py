"""Pairwise choices: "this image is better than that one", or "they are the same".

A choice says more than two star ratings made minutes apart: the scale of stars drifts over
an evening, a side-by-side pick does not. Choices are kept in `learning_choices` (see
`LearningStore.record_choice`) and feed the taste model with the ratings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What the user said of a pair shown as left and right."""

    left = "left"
    right = "right"
    same = "same"


@dataclass(frozen=True)
class Choice:
    """One stored choice: *winner* beat *loser*, or (same) neither did."""

    id: int
    winner_id: int
    loser_id: int
    same: bool
    winner_key: str
    loser_key: str
    winner_path: str
    loser_path: str
    pack: str | None
    source: str
    created_at: float

    def to_json(self) -> dict[str, object]:
        """The shape written to exports: records by key and path, so it reads without our db."""
        return {"winner": self.winner_key, "loser": self.loser_key, "same": self.same,
                "winner_path": self.winner_path, "loser_path": self.loser_path,
                "pack": self.pack, "source": self.source, "created_at": self.created_at}
