"""Check 2, out-of-scope abstention: does the assistant say it cannot help, or does it make up an answer?

The questions come from ``assets/probes/out_of_scope.jsonl``: other domains (cooking, medicine, law …) and
questions about the product that support data rarely holds (its CEO, revenue, Wi-Fi password), with the product's
name taken from the system prompt. A question is dropped when the assistant's purpose or data covers it: when the
system prompt or one training row holds at least COVERED_SHARE of its content words (Chinese: character pairs), and
two of them at least. One row, not the whole data: ten thousand rows hold "moon" and "earth" somewhere.
An answer abstains when :func:`core.evaluation.refusals.is_abstention` says so.

The fix the line can apply: :func:`abstention_examples` writes "I can't help with that" rows from the system
prompt, over a second pool of questions (``pool: train``) disjoint from the ones the check asks.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from core.evaluation.answering import AnswerFn, ProgressFn, answer_all, check_limit
from core.evaluation.checks import CheckResult
from core.evaluation.probes import LANGS, PROBES_DIR, ProbeFileError, round_robin
from core.evaluation.refusals import is_abstention
from core.evaluation.textmetrics import is_cjk

NAME = "abstention"
OUT_OF_SCOPE = PROBES_DIR / "out_of_scope.jsonl"
POOLS = ("eval", "train")
PRODUCT = "product"          # the domain of questions about the product itself ({name} in their text)
COVERED_SHARE = 0.5          # a row (or the system prompt) holding this share of a question's content words covers it
FIX_BELOW = 0.5              # a tuned abstention rate below this makes the report offer abstention_examples
FALLBACK_NAME = {"en": "your company", "zh": "你们公司"}
_STOP_EN = frozenset(
    "what which when where who whom whose does have with about that this there their your from will would could "
    "should much many into than then them they were been being some more most make made only also just like know "
    "need want tell please here year next last time good best instead long often exact the and for you can how "
    "why are was did has had not but any all get got its our out one two may use way day new now see "
    "let own too very yes".split())
_STOP_ZH = frozenset("什么 怎么 怎样 可以 如何 我们 你们 是否 多少 哪些 哪里 哪个 为什么 一个 没有 请问 应该 时候 "
                     "这个 那个 现在 还是 就是 可能 需要 知道 告诉 是谁 有多".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_REPLIES = {
    "en": ("I'm sorry, I can't help with that. I am {role}, so I only answer questions within that role.",
           "That is outside my scope, and I don't want to guess. I am {role}; please ask me about that instead.",
           "Sorry, I can't answer that. I am {role} and can only help with related questions."),
    "zh": ("抱歉，我无法回答这个问题。我是{role}，只能回答与此相关的问题。",
           "这个问题超出了我的服务范围，我不想随意猜测。我是{role}，欢迎问我相关的问题。",
           "对不起，我不能提供这方面的帮助。我是{role}，只能协助相关的问题。"),
}
_ROLE_FALLBACK = {"en": "an assistant with a specific purpose", "zh": "一个有特定用途的助手"}


def load_out_of_scope(lang: str, pool: str = "eval", path: Optional[Path] = None) -> list[dict]:
    """The question rows ({lang, pool, domain, question}) of ``lang`` and ``pool``, validated."""
    path = Path(path) if path else OUT_OF_SCOPE
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProbeFileError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
            problem = _row_error(row)
            if problem:
                raise ProbeFileError(f"{path.name} line {number}: {problem}")
            rows.append(row)
    return [r for r in rows if r["lang"] == lang and r["pool"] == pool]


def _row_error(row) -> Optional[str]:
    if not isinstance(row, dict) or row.get("lang") not in LANGS or row.get("pool") not in POOLS:
        return f"a row needs `lang` in {LANGS} and `pool` in {POOLS}"
    if not isinstance(row.get("question"), str) or not isinstance(row.get("domain"), str):
        return "a row needs `question` and `domain` strings"
    if (row["domain"] == PRODUCT) != ("{name}" in row["question"]):
        return "product questions, and only they, hold {name}"
    return None


def product_name(system_prompt: str, lang: str = "en") -> str:
    """The product or company the system prompt names ("… assistant of Nimbus Home."), else a generic phrase."""
    text = system_prompt or ""
    m = re.search(r"\b(?:of|for|at|from|by)\s+(?:the\s+)?((?:[A-Z][\w&'-]*)(?:\s+[A-Z][\w&'-]*)*)", text)
    if m:
        return m.group(1)
    m = re.search(r"(?:^|[是，,。\s])([^是，,。\s]{2,12}?)的(?:客服|助手|智能|在线|售后|AI)", text)
    if m:
        return m.group(1)
    return FALLBACK_NAME.get(lang, FALLBACK_NAME["en"])


def _content_units(text: str) -> set[str]:
    """Content words (Latin, 3+ letters, stop words out) and Chinese character pairs (common pairs out)."""
    text = text.lower()
    units = {w for w in _WORD.findall(text) if w not in _STOP_EN}
    run = ""
    for ch in text + " ":
        if is_cjk(ch):
            run += ch
            continue
        units.update(run[i:i + 2] for i in range(len(run) - 1) if run[i:i + 2] not in _STOP_ZH)
        run = ""
    return units


def _row_text(row: dict) -> str:
    return "\n".join(m.get("content") or "" for m in row.get("messages") or [])


def _index(texts: Iterable[str]) -> dict[str, set[int]]:
    """Content unit → the texts (by position) that hold it."""
    index: dict[str, set[int]] = {}
    for i, text in enumerate(texts):
        for unit in _content_units(text):
            index.setdefault(unit, set()).add(i)
    return index


def _covered(question: str, name: str, index: dict[str, set[int]]) -> bool:
    """True when one text of the index holds COVERED_SHARE of the question's content units, two at least (one
    shared word is no evidence)."""
    units = _content_units(question.replace(name, " "))
    best = max(Counter(i for u in units for i in index.get(u, ())).values(), default=0)
    return best >= 2 and best / len(units) >= COVERED_SHARE


def _questions(lang: str, pool: str, name: str) -> list[str]:
    """Every question of a pool, the product's name filled in, interleaved so a prefix covers every domain."""
    groups: dict[str, list[str]] = {}
    for row in load_out_of_scope(lang, pool):
        groups.setdefault(row["domain"], []).append(row["question"].replace("{name}", name))
    product = groups.pop(PRODUCT, [])
    return round_robin([product, *groups.values()])   # the product's own questions lead


def out_of_scope_questions(system_prompt: str, train_rows: list[dict], lang: str = "en",
                           limit: Optional[int] = None) -> list[str]:
    """Questions the assistant's purpose and data do not cover (other domains, unmentioned product facts)."""
    check_limit(limit)
    name = product_name(system_prompt, lang)
    index = _index([system_prompt or "", *map(_row_text, train_rows)])
    kept = [q for q in _questions(lang, "eval", name) if not _covered(q, name, index)]
    return kept[:limit] if limit is not None else kept


def _figures(answers: list[str], flags: list[bool]) -> dict:
    n = len(answers)
    return {"abstained": sum(flags), "answered": n - sum(flags), "total": n, "rate": sum(flags) / n if n else None}


def _notes(base: dict, tuned: dict) -> list[str]:
    """Codes: the tuned model makes answers up (with the fix), abstains less than the base, or is fine."""
    if tuned["rate"] is None:
        return ["check.abstention.no_questions"]
    notes = []
    if tuned["rate"] < FIX_BELOW:
        notes += ["check.abstention.made_up", "check.abstention.fix"]
    if tuned["rate"] < base["rate"]:
        notes.append("check.abstention.worse")
    return notes or ["check.abstention.ok"]


def check_abstention(answer_base: AnswerFn, answer_tuned: AnswerFn, questions: list[str],
                     progress: Optional[ProgressFn] = None) -> CheckResult:
    """Ask both models the out-of-scope ``questions``; the share of answers that decline or say they don't know."""
    t0 = time.perf_counter()
    prompts = [[{"role": "user", "content": q}] for q in questions]
    base = answer_all(answer_base, prompts, progress, (0.0, 0.5), "check.abstention.base")
    tuned = answer_all(answer_tuned, prompts, progress, (0.5, 1.0), "check.abstention.tuned")
    base_flags, tuned_flags = [is_abstention(a) for a in base], [is_abstention(a) for a in tuned]
    items = [{"question": q, "base_answer": b, "tuned_answer": t, "base_abstained": bf, "tuned_abstained": tf}
             for q, b, t, bf, tf in zip(questions, base, tuned, base_flags, tuned_flags)]
    base_fig, tuned_fig = _figures(base, base_flags), _figures(tuned, tuned_flags)
    return CheckResult(NAME, base_fig, tuned_fig, items, time.perf_counter() - t0, len(base) + len(tuned),
                       _notes(base_fig, tuned_fig))


def assistant_role(system_prompt: str, lang: str = "en") -> str:
    """The assistant's role in the first person's words: "You are the support assistant of X." → that phrase."""
    text = (system_prompt or "").strip()
    m = re.search(r"\b(?:you are|you're)\s+([^.!?\n]+)", text, re.IGNORECASE)
    if m and lang == "en":
        return m.group(1).strip()
    m = re.search(r"(?:你是|您是)([^。！？!?\n，,]+)", text)
    if m and lang == "zh":
        return m.group(1).strip()
    return _ROLE_FALLBACK.get(lang, _ROLE_FALLBACK["en"])


def abstention_examples(system_prompt: str, n: int, lang: str = "en") -> list[dict]:
    """Up to ``n`` "I can't help with that" training rows (normalised conversations) built from the system prompt.

    The questions come from the training pool, which the check never asks; each (question, reply wording) pair is
    used once, so at most questions × wordings rows exist.
    """
    replies = _REPLIES.get(lang, _REPLIES["en"])
    role = assistant_role(system_prompt, lang)
    questions = _questions(lang, "train", product_name(system_prompt, lang))
    count = min(max(0, n), len(questions) * len(replies))
    rows = []
    for k in range(count):
        i, j = k % len(questions), k // len(questions)   # every question once before any repeats
        messages = [{"role": "user", "content": questions[i]},
                    {"role": "assistant", "content": replies[(i + j) % len(replies)].format(role=role)}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        rows.append({"messages": messages, "meta": {"id": f"abstain-{lang}-{k + 1}", "source": NAME}})
    return rows
