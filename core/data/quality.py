"""DataQualityAnalyzer: measure a dataset and explain every point it loses.

The report (a JSON-able dict) has ``score`` (0-100), ``deductions`` and ``checks`` with the figures of every
check: empty fields, exact and near duplicates, conflicting answers, token lengths, script mix (Han, Latin or
other letters: a script, not a language - French and English are both Latin), personal data, label balance,
answer diversity, formatting. A deduction has ``check``, ``code`` and ``params`` (what the pages translate, see
``core.data.findings``), ``points``, ``count``, ``rows`` (the affected source rows, at most ``max_listed``) and
``cause`` and ``fix`` (the English text of the code, for the CLI and the JSON output).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from .chunking import plan_chunks
from .findings import render_finding
from .minhash import near_duplicate_groups
from .pii import pii_values
from .text import formatting_issues, norm_key, script_counts, script_from_counts

DEFAULT = "default"  # sentinel: the default model's tokenizer
SCRIPTS = ("latin", "han", "other", "none")  # the script check's codes ("none": no letters)
MIN_ROWS = 100


def row_id(conv: dict, index: int) -> Any:
    """The id a report uses for a conversation: its 1-based source row."""
    return conv.get("meta", {}).get("row", index + 1)


def is_text_doc(conv: dict) -> bool:
    """A plain-text document (one assistant turn, no prompt)."""
    msgs = conv["messages"]
    return len(msgs) == 1 and msgs[0]["role"] == "assistant"


def resolve_tokenizer(tokenizer: Any):
    """DEFAULT -> the default model's tokenizer; a name -> that model's; None -> None (approximate counts)."""
    if tokenizer is None or tokenizer == "approx":
        return None
    if isinstance(tokenizer, str):
        from core.defaults import DEFAULT_MODEL
        from core.models import load_tokenizer

        return load_tokenizer(DEFAULT_MODEL if tokenizer == DEFAULT else tokenizer)
    return tokenizer


def conversation_keys(convs: list[dict], key_of=None) -> tuple[list[str], list[str], list[str]]:
    """Normalised (whole conversation, prompt = everything before the last answer, last answer) keys."""
    memo: dict[str, str] = {}

    def key(text: str) -> str:
        if key_of is not None:
            return key_of(text)
        found = memo.get(text)
        if found is None:
            found = memo[text] = norm_key(text)
        return found

    whole, prompts, answers = [], [], []
    for c in convs:
        msgs = c["messages"]
        keys = [key(m["content"]) for m in msgs]
        last = max((j for j, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        whole.append("\x1f".join(keys))
        prompts.append(" ".join(keys if last is None else keys[:last]).strip())
        answers.append("" if last is None else keys[last])
    return whole, prompts, answers


def near_duplicate_rows(prompts: list[str], answers: list[str], threshold: float) -> list[list[int]]:
    """Groups of rows similar in their prompt AND their answer (plain documents: in their text).

    Comparing the two sides separately keeps a long shared stock answer from making different questions
    look alike, and a shared prompt from making different answers look alike.
    """
    primary = [p if p else a for p, a in zip(prompts, answers)]
    return near_duplicate_groups(primary, threshold, also=answers)


class TokenCounter:
    """Token lengths of conversations as the chat template renders them (template overhead measured once)."""

    def __init__(self, tokenizer=None):
        self.tok = tokenizer
        self.base, self.per_msg = self._overhead()

    def count_texts(self, texts: list[str]) -> np.ndarray:
        """Tokens per text: the tokenizer's, or ~4 characters per token (1.5 tokens per non-ASCII character)."""
        if self.tok is None:
            return np.fromiter((math.ceil(sum(1 for c in t if c < "\x80") / 4 + 1.5 * sum(1 for c in t if c >= "\x80"))
                                for t in texts), dtype=np.int64, count=len(texts))
        if not texts:
            return np.zeros(0, dtype=np.int64)
        unique = list(dict.fromkeys(texts))  # labels and stock answers repeat: tokenise each once
        backend = getattr(self.tok, "backend_tokenizer", None)
        if backend is not None:  # the Rust tokenizer directly: no per-row Python conversion
            encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
            sizes = [len(e.ids) for e in encode(unique, add_special_tokens=False)]
        else:
            sizes = [len(x) for x in self.tok(unique, add_special_tokens=False)["input_ids"]]
        lookup = dict(zip(unique, sizes))
        return np.fromiter((lookup[t] for t in texts), dtype=np.int64, count=len(texts))

    def _overhead(self) -> tuple[int, int]:
        if self.tok is None or not getattr(self.tok, "chat_template", None):
            return 0, 4
        two = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        try:
            n2 = len(self.tok.apply_chat_template(two, tokenize=True, return_dict=True)["input_ids"])
            n4 = len(self.tok.apply_chat_template(two * 2, tokenize=True, return_dict=True)["input_ids"])
        except Exception:  # noqa: BLE001 - a template that refuses a toy chat: fall back to a guess
            return 0, 4
        content = int(self.count_texts(["a", "b"]).sum())
        per_msg = max(0, (n4 - n2 - content) // 2)
        return max(0, n2 - content - 2 * per_msg), per_msg

    def lengths(self, convs: list[dict]) -> np.ndarray:
        """Estimated templated length of every conversation."""
        flat = [m["content"] for c in convs for m in c["messages"]]
        counts = self.count_texts(flat)
        sizes = np.fromiter((len(c["messages"]) for c in convs), dtype=np.int64, count=len(convs))
        sums = np.add.reduceat(counts, np.concatenate([[0], np.cumsum(sizes)[:-1]])) if len(flat) else sizes * 0
        sums = np.where(sizes > 0, sums, 0)
        docs = np.fromiter((is_text_doc(c) for c in convs), dtype=bool, count=len(convs))
        return np.where(docs, sums + 1, sums + self.base + self.per_msg * sizes)


class DataQualityAnalyzer:
    """Runs every quality check on normalised conversations and scores the dataset 0-100."""

    def __init__(self, tokenizer: Any = DEFAULT, max_seq_len: int = 512, near_dup_threshold: float = 0.8,
                 rare_label_min: int = 5, max_listed: int = 50):
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.max_seq_len = max_seq_len
        self.near_dup_threshold = near_dup_threshold
        self.rare_label_min = rare_label_min
        self.max_listed = max_listed

    # ------------------------------------------------------------ entry point
    def analyze(self, convs: list[dict], info: dict | None = None, only: tuple[str, ...] | None = None) -> dict:
        """The quality report of a list of conversations (see the module docstring); ``only``: these checks."""
        self._deductions: list[dict] = []
        info = info or {}
        self._ids = [row_id(c, i) for i, c in enumerate(convs)]
        fmt = info.get("format")
        self._facts = self._message_facts(convs)
        self._whole, prompts, answers = conversation_keys(convs, key_of=lambda t: self._facts[t][0])
        self._pa = list(zip(prompts, answers))
        runs = {
            "size": lambda: self._size(convs),
            "empty": lambda: self._empty(convs),
            "duplicates": lambda: self._duplicates(convs),
            "conflicts": lambda: self._conflicts(convs, fmt),
            "lengths": lambda: self._lengths(convs),
            "documents": lambda: self._documents(convs),
            "script": lambda: self._script(convs),
            "pii": lambda: self._pii(convs),
            "labels": lambda: self._labels(convs),
            "diversity": lambda: self._diversity(convs, fmt),
            "formatting": lambda: self._formatting(convs),
        }
        checks = {name: run() for name, run in runs.items() if only is None or name in only}
        lost = sum(d["points"] for d in self._deductions)
        return {"rows": len(convs), "format": fmt, "num_labels": checks.get("labels", {}).get("num_labels", 0),
                "score": max(0, 100 - lost), "deductions": sorted(self._deductions, key=lambda d: -d["points"]),
                "checks": checks, "tokenizer": self._tok_name(), "max_seq_len": self.max_seq_len}

    @staticmethod
    def _message_facts(convs: list[dict]) -> dict[str, tuple]:
        """Per distinct message text (labels and stock answers repeat): (key, PII, formatting, script counts)."""
        facts: dict[str, tuple] = {}
        for c in convs:
            for m in c["messages"]:
                text = m["content"]
                if text not in facts:
                    facts[text] = (norm_key(text), pii_values(text), formatting_issues(text), script_counts(text))
        return facts

    def _tok_name(self) -> str:
        if self.tokenizer is None:
            return "approximate (4 characters per token)"
        return str(getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__)

    def _deduct(self, check: str, code: str, params: dict, points: float, indices: list[int]) -> None:
        """Record a finding (a code and its parameters) when it costs points and names rows."""
        points = int(round(points))
        if points <= 0 or not indices:
            return
        self._add(check, code, params, points, len(indices), [self._ids[i] for i in indices[: self.max_listed]])

    def deduct(self, check: str, code: str, params: dict, points: float, indices: list[int]) -> None:
        """Record a finding of a check run outside this class (the preference report's pair checks)."""
        self._deduct(check, code, params, points, indices)

    def findings(self) -> list[dict]:
        """The findings of the last ``analyze`` call and those recorded since."""
        return list(self._deductions)

    def _add(self, check: str, code: str, params: dict, points: int, count: int, rows: list) -> None:
        cause, fix = render_finding(code, params)
        self._deductions.append({"check": check, "code": code, "params": params, "points": points,
                                 "count": count, "rows": rows, "cause": cause, "fix": fix})

    @staticmethod
    def points(share: float, weight: float, cap: float, floor: float = 1) -> float:
        """Points a finding costs: its share of rows times a weight, between a floor and a cap."""
        return min(cap, max(floor, share * weight))

    _points = points

    # ------------------------------------------------------------ checks
    def _size(self, convs: list[dict]) -> dict:
        n = len(convs)
        if 0 < n < MIN_ROWS:
            self._add("size", "size_small", {"n": n, "min_rows": MIN_ROWS}, 10 if n < 20 else 5, n, [])
        return {"rows": n}

    def _empty(self, convs: list[dict]) -> dict:
        empty, no_answer, trailing_user = [], [], []
        for i, c in enumerate(convs):
            msgs = c["messages"]
            if any(not m["content"].strip() and not m.get("tool_calls") for m in msgs):
                empty.append(i)
            if not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
                no_answer.append(i)
            elif msgs and msgs[-1]["role"] == "user":
                trailing_user.append(i)
        n = max(1, len(convs))
        self._deduct("empty", "empty_fields", {"rows": len(empty)}, self._points(len(empty) / n, 100, 20, 2), empty)
        self._deduct("empty", "trailing_user", {"rows": len(trailing_user)},
                     self._points(len(trailing_user) / n, 20, 3), trailing_user)
        return {"empty_fields": len(empty), "no_answer": len(no_answer), "ends_with_user": len(trailing_user)}

    def _duplicates(self, convs: list[dict]) -> dict:
        keys = self._whole
        first: dict[str, int] = {}
        exact = []
        for i, k in enumerate(keys):
            if k in first:
                exact.append(i)
            else:
                first[k] = i
        uniques = list(first.values())
        groups = near_duplicate_rows([self._pa[i][0] for i in uniques], [self._pa[i][1] for i in uniques],
                                     self.near_dup_threshold)
        near = sorted(uniques[j] for g in groups for j in g[1:])
        n = max(1, len(convs))
        self._deduct("duplicates", "exact_duplicates", {"rows": len(exact)},
                     self._points(len(exact) / n, 50, 15, 2), exact)
        self._deduct("near_duplicates", "near_duplicates",
                     {"rows": len(near), "threshold": round(100 * self.near_dup_threshold)},
                     self._points(len(near) / n, 30, 10), near)
        examples = [[self._ids[uniques[j]] for j in g[:5]] for g in groups[:5]]
        return {"exact": len(exact), "exact_rate": round(len(exact) / n, 4), "near": len(near),
                "near_rate": round(len(near) / n, 4), "near_groups": len(groups), "near_examples": examples}

    def _conflicts(self, convs: list[dict], fmt: str | None) -> dict:
        answers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, c in enumerate(convs):
            if is_text_doc(c):
                continue
            prompt, answer = self._pa[i]
            if prompt and answer:
                answers[prompt][answer].append(i)
        conflicting = [grp for grp in answers.values() if len(grp) > 1]
        rows = sorted(i for grp in conflicting for idx in grp.values() for i in idx)
        n = max(1, len(convs))
        weight, cap = (100, 20) if fmt == "classification" else (30, 10)
        code = "conflicts_labels" if fmt == "classification" else "conflicts_answers"
        self._deduct("conflicts", code, {"questions": len(conflicting), "rows": len(rows)},
                     self._points(len(rows) / n, weight, cap, 2), rows)
        return {"questions": len(conflicting), "rows": len(rows)}

    def _documents(self, convs: list[dict]) -> dict:
        """Plain documents are chunked, not truncated: their token count and the windows they make."""
        docs = [c for c in convs if is_text_doc(c)]
        if not docs:
            return {}
        return plan_chunks(TokenCounter(self.tokenizer).lengths(docs).tolist(), self.max_seq_len)

    def _lengths(self, convs: list[dict]) -> dict:
        lengths = TokenCounter(self.tokenizer).lengths(convs)
        if not len(lengths):
            return {}
        chunked = np.fromiter((is_text_doc(c) for c in convs), dtype=bool, count=len(convs))
        over = np.nonzero((lengths > self.max_seq_len) & ~chunked)[0].tolist()  # documents are chunked, not cut
        pct = {f"p{p}": int(np.percentile(lengths, p)) for p in (50, 90, 95, 99)}
        hist, edges = np.histogram(lengths, bins=min(20, max(1, len(set(lengths.tolist())))))
        self._deduct("lengths", "too_long", {"rows": len(over), "max_seq_len": self.max_seq_len, "p99": pct["p99"]},
                     self._points(len(over) / len(lengths), 100, 15, 2), over)
        return {"tokenizer": self._tok_name(), "min": int(lengths.min()), "max": int(lengths.max()),
                "mean": round(float(lengths.mean()), 1), **pct, "over_max": len(over),
                "truncated_share": round(len(over) / len(lengths), 4), "total_tokens": int(lengths.sum()),
                "histogram": {"counts": hist.tolist(), "edges": [round(float(e), 1) for e in edges]}}

    def _script(self, convs: list[dict]) -> dict:
        """Which writing system dominates each row (Han, Latin, other letters): rows outside the main one."""
        scripts = [script_from_counts(*map(sum, zip(*(self._facts[m["content"]][3] for m in c["messages"]))))
                   if c["messages"] else "none" for c in convs]
        counts = Counter(scripts)
        n = max(1, len(convs))
        shares = {k: round(counts.get(k, 0) / n, 4) for k in SCRIPTS}
        main = max(SCRIPTS[:-1], key=lambda k: counts.get(k, 0))
        minority = [i for i, s in enumerate(scripts) if s not in (main, "none")]
        if 0 < len(minority) / n < 0.2:
            self._deduct("script", "script_minority", {"rows": len(minority), "script": main}, 3, minority)
        return {"main": main, "shares": shares, "counts": dict(counts)}

    def _pii(self, convs: list[dict]) -> dict:
        kinds: dict[str, list[int]] = defaultdict(list)
        values: Counter = Counter()
        for i, c in enumerate(convs):
            found = {kind_value for m in c["messages"] for kind_value in self._facts[m["content"]][1]}
            for kind in {k for k, _ in found}:
                kinds[kind].append(i)
            values.update(found)
        rows = sorted({i for idx in kinds.values() for i in idx})
        by_kind = {k: len(v) for k, v in sorted(kinds.items())}
        share = len(rows) / max(1, len(convs))
        repeated = len(values) <= 3 and len(rows) >= 10
        params = {"rows": len(rows), "by_kind": by_kind, "distinct": len(values)}
        if repeated:  # one contact in every answer is usually the company's own, not a customer's
            params["values"] = [v for (_, v), _ in values.most_common(3)]
            self._deduct("pii", "pii_repeated", params, self._points(share, 20, 5, 2), rows)
        else:
            self._deduct("pii", "pii_personal", params, self._points(share, 100, 15, 3), rows)
        return {"rows": len(rows), "by_kind": {k: len(v) for k, v in sorted(kinds.items())},
                "distinct_values": len(values)}

    def _labels(self, convs: list[dict]) -> dict:
        labels = [c.get("meta", {}).get("label") for c in convs]
        if not any(lab is not None for lab in labels):
            return {"num_labels": 0}
        counts = Counter(lab for lab in labels if lab is not None)
        ordered = dict(counts.most_common())
        median = float(np.median(list(counts.values())))
        rare = sorted(lab for lab, k in counts.items() if k < max(self.rare_label_min, 0.2 * median))
        ratio = round(max(counts.values()) / min(counts.values()), 2)
        rare_rows = [i for i, lab in enumerate(labels) if lab in set(rare)]
        self._deduct("labels", "labels_rare", {"n": len(rare), "labels": rare,
                                                "min_examples": max(self.rare_label_min, int(0.2 * median) + 1)},
                     min(10, 2 + len(rare)), rare_rows)
        if ratio > 10:
            big = max(counts, key=counts.get)
            self._deduct("labels", "labels_imbalanced", {"label": big, "ratio": ratio}, 5,
                         [i for i, lab in enumerate(labels) if lab == big])
        variants: dict[str, set] = defaultdict(set)
        for lab in counts:
            variants[norm_key(lab.replace("_", " "))].add(lab)
        clashes = [sorted(v) for v in variants.values() if len(v) > 1]
        if clashes:
            clash_set = {lab for v in clashes for lab in v}
            self._deduct("labels", "labels_variants", {"groups": clashes[:5]}, 5,
                         [i for i, lab in enumerate(labels) if lab in clash_set])
        missing = [i for i, lab in enumerate(labels) if lab is None]
        return {"num_labels": len(counts), "counts": ordered, "min": min(counts.values()), "max": max(counts.values()),
                "imbalance_ratio": ratio, "rare": rare, "variants": clashes, "missing": len(missing)}

    def _diversity(self, convs: list[dict], fmt: str | None) -> dict:
        answers = [self._pa[i][1] for i, c in enumerate(convs) if not is_text_doc(c)]
        if not answers:
            return {}
        counts = Counter(answers)
        top, top_n = counts.most_common(1)[0]
        distinct = round(len(counts) / len(answers), 4)
        top_share = round(top_n / len(answers), 4)
        words = [w for a in answers[:5000] for w in a.split()]
        ttr = round(len(set(words)) / max(1, len(words)), 4)
        if fmt != "classification" and len(answers) >= 20 and (distinct < 0.1 or top_share > 0.2):
            idx = [i for i, c in enumerate(convs) if not is_text_doc(c) and
                   counts[self._pa[i][1]] > 1]
            self._deduct("diversity", "low_diversity", {"distinct": len(counts), "rows": len(answers),
                                                        "top_share": round(100 * top_share)},
                         self._points(1 - distinct, 10, 10, 3), idx)
        return {"distinct_answers": len(counts), "distinct_ratio": distinct, "top_answer_share": top_share,
                "type_token_ratio": ttr}

    def _formatting(self, convs: list[dict]) -> dict:
        kinds: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(convs):
            found = set()
            for m in c["messages"]:
                found.update(self._facts[m["content"]][2])
            for k in found:
                kinds[k].append(i)
        rows = sorted({i for v in kinds.values() for i in v})
        self._deduct("formatting", "formatting", {"rows": len(rows), **{k: len(kinds.get(k, [])) for k in
                                                                         ("html", "control", "whitespace")}},
                     self._points(len(rows) / max(1, len(convs)), 20, 5), rows)
        return {k: len(v) for k, v in sorted(kinds.items())}
