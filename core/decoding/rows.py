"""One answer being decoded: when it ends (end token, stop string, token limit), its text, and streamed deltas."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class Answer:
    """One generated answer (the fields of core.evaluation.generation.Answer, so it can replace it)."""

    text: str
    n_tokens: int    # generated tokens kept: before the end token, or up to the one completing a stop string
    finished: bool   # False when the answer hit its token limit without ending
    token_ids: list[int] = field(default_factory=list)  # the generated ids (end token excluded)


class Row:
    """The decoding state of one prompt: feed it sampled tokens until ``done``."""

    def __init__(self, index: int, prompt: Sequence[int], limit: int, tok, ends: Sequence[int],
                 stops: Sequence[str] = ()):
        self.index, self.prompt, self.limit, self.tok = index, list(prompt), limit, tok
        self.ends, self.stops = set(ends), [s for s in stops if s]
        self.tokens: list[int] = []   # generated tokens, the end token excluded
        self.fed = 0                  # tokens fed, the end token included (max_new_tokens counts it, as in HF)
        self.done = self.finished = False
        self.cut: str | None = None   # the text before the first stop string, once one appeared
        self.emitted = ""             # text already streamed

    def seen(self) -> list[int]:
        """Prompt and answer ids (what the repetition penalty looks at)."""
        return self.prompt + self.tokens

    def feed(self, token: int) -> bool:
        """Take the next sampled token; True when the answer is complete."""
        self.fed += 1
        if token in self.ends:
            self.done = self.finished = True
            return True
        self.tokens.append(token)
        if self.stops:
            text = self.decode()
            hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
            if hits:
                self.cut, self.done, self.finished = text[:min(hits)], True, True
                return True
        self.done = self.fed >= self.limit
        return self.done

    def decode(self) -> str:
        """The answer's text so far (special tokens skipped)."""
        return self.tok.decode(self.tokens, skip_special_tokens=True)

    def answer(self) -> Answer:
        """The final answer."""
        text = self.cut if self.cut is not None else self.decode()
        return Answer(text, len(self.tokens), self.finished, list(self.tokens))

    def delta(self) -> str:
        """New text safe to show: held back while it may be a half UTF-8 character or the start of a stop string."""
        if self.done:
            text = self.answer().text
        else:
            text = self.decode().rstrip("\ufffd")
            hold = max((len(s) for s in self.stops), default=1) - 1
            text = text[:max(0, len(text) - hold)]
        if not text.startswith(self.emitted):  # a tokenizer that rewrites earlier text: wait until it settles
            return ""
        new, self.emitted = text[len(self.emitted):], text
        return new
