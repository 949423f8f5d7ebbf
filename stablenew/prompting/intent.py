"""The session intent document: what the user has said so far, what they like, what to avoid.

Each feedback round adds to it; step 1 of the next round reads its summary, so "no, still too
dark" is understood against what came before, and phrases the user removed or images they
rejected stay out of later rewrites. It can be saved as YAML beside a session.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from stablenew.prompting.refine import Changes, RefineResult
from stablenew.storage.atomic import atomic_write_text
from stablenew.storage.documents import dump_yaml, load_yaml_model

INTENT_VERSION = 1
#: Enough rounds to follow a session; older ones are dropped from the document.
MAX_ROUNDS = 20
MAX_REJECTED = 5


class FeedbackRound(BaseModel):
    """One round: the user's words, the changes read from them, the prompt before and after."""

    feedback: str
    changes: Changes
    before: str
    after: str


class IntentDocument(BaseModel):
    """Accumulated feedback, preferences and an avoid list for one refinement session."""

    model_config = ConfigDict(extra="forbid")

    version: int = INTENT_VERSION
    goal: str = ""  # the prompt the session started from
    rounds: list[FeedbackRound] = Field(default_factory=list)
    preferences: list[str] = Field(default_factory=list)
    avoid: list[str] = Field(default_factory=list)
    rejected_images: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.rounds or self.preferences or self.avoid or self.rejected_images)

    def record(self, feedback: str, result: RefineResult, rejected: Sequence[str] = ()) -> None:
        """Add one round: kept and added phrases become preferences, removed and replaced ones
        join the avoid list (a phrase wanted again leaves it), rejected images are remembered."""
        if not self.goal:
            self.goal = result.original
        changes = result.changes
        liked = [*changes.keep, *changes.add, *changes.emphasis_up, *(m.to for m in changes.modify)]
        disliked = [*changes.remove, *(m.from_ for m in changes.modify)]
        wanted = {p.lower() for p in liked}
        self.avoid = [p for p in self.avoid if p.lower() not in wanted]
        self.preferences = [p for p in self.preferences if p.lower() not in {d.lower() for d in disliked}]
        for phrase in liked:
            if phrase.lower() not in {p.lower() for p in self.preferences}:
                self.preferences.append(phrase)
        for phrase in disliked:
            if phrase.lower() not in {p.lower() for p in self.avoid}:
                self.avoid.append(phrase)
        self.rejected_images = [*self.rejected_images, *rejected][-MAX_REJECTED:]
        self.rounds = [*self.rounds, FeedbackRound(feedback=feedback, changes=changes,
                                                   before=result.original, after=result.prompt)]
        self.rounds = self.rounds[-MAX_ROUNDS:]

    def summary(self) -> str:
        """The document in a few lines for the interpret step."""
        lines = []
        if self.goal:
            lines.append(f"Started from: {self.goal}")
        for i, round_ in enumerate(self.rounds[-5:], 1):
            lines.append(f"Feedback {i}: {round_.feedback}")
        if self.preferences:
            lines.append("The user wants: " + ", ".join(self.preferences))
        if self.avoid:
            lines.append("The user does not want: " + ", ".join(self.avoid))
        lines += [f"Rejected an image that showed: {d}" for d in self.rejected_images]
        return "\n".join(lines)

    def save(self, path: Path) -> Path:
        return atomic_write_text(path, dump_yaml(self.model_dump(mode="json", by_alias=True)))

    @classmethod
    def load(cls, path: Path) -> IntentDocument:
        """Read a saved document; a DocumentError naming file, line and field when unusable."""
        return load_yaml_model(path, cls)
