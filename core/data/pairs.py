"""A preference pair: one prompt, the answer the user prefers and the one they do not.

Every preference format we read (prompt/chosen/rejected, OpenAI's DPO JSONL, whole-transcript pairs) is normalised
to this shape; the trainer and evaluation only ever see it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PreferencePair:
    """Chat messages before the answer, then the preferred and the rejected assistant turn(s)."""

    prompt: list[dict]                 # ends with a user turn; a system message may lead
    chosen: list[dict]                 # usually one {"role": "assistant", "content": ...}
    rejected: list[dict]
    meta: dict = field(default_factory=dict)  # source row number, ids; never used for training

    def to_dict(self) -> dict:
        """The pair as the JSON row stored in a dataset split."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, "meta": self.meta}

    @classmethod
    def from_dict(cls, row: dict) -> "PreferencePair":
        """Inverse of ``to_dict``."""
        return cls(list(row["prompt"]), list(row["chosen"]), list(row["rejected"]), dict(row.get("meta") or {}))


def messages_text(value) -> str:
    """A pair side (a list of chat messages) as plain text for tables; any other value as ``str``."""
    if isinstance(value, list):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else str(value)
