"""Pure answer-vs-reference metrics: exact match, token F1, ROUGE-L, BLEU, chrF, classification scores.

Segmentation (used by exact match, token F1 and ROUGE-L):
  * text is lower-cased and NFKC-normalised (full-width ASCII becomes ASCII);
  * every CJK character (Han ideographs, kana, hangul, CJK punctuation excluded) is ONE token, because Chinese has
    no spaces and a word segmenter would be a heavy dependency whose choices change the score;
  * the rest is split into runs of letters/digits (``\\w+``); punctuation and whitespace separate tokens and are dropped;
  * for exact match and token F1 the English articles "a", "an", "the" are dropped as well (the SQuAD convention).
So "我爱NLP!" segments to ["我", "爱", "nlp"].
BLEU and chrF come from sacrebleu (BLEU with its "zh" tokenizer when the references contain CJK, else "13a").
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Iterable, Optional, Sequence

from core.data.text import CJK_RANGES as _CJK_RANGES

_ARTICLES = {"a", "an", "the"}
_WORD_RE = re.compile(r"\w+", re.UNICODE)


def is_cjk(ch: str) -> bool:
    """True for one CJK ideograph / kana / hangul character."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def has_cjk(text: str) -> bool:
    """True when the text holds at least one CJK character."""
    return any(is_cjk(ch) for ch in text or "")


def cjk_share(text: str) -> float:
    """Share of CJK characters among the letters of ``text`` (0 when it has no letters)."""
    letters = [ch for ch in text or "" if ch.isalpha()]
    return sum(is_cjk(ch) for ch in letters) / len(letters) if letters else 0.0


def segment(text: str, drop_articles: bool = False) -> list[str]:
    """Tokens as described in the module docstring: one per CJK character, ``\\w+`` runs otherwise."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    tokens: list[str] = []
    for run in _WORD_RE.findall(text):
        buf = []
        for ch in run:
            if is_cjk(ch):
                if buf:
                    tokens.append("".join(buf))
                    buf = []
                tokens.append(ch)
            else:
                buf.append(ch)
        if buf:
            tokens.append("".join(buf))
    if drop_articles:
        tokens = [t for t in tokens if t not in _ARTICLES]
    return tokens


def normalize_answer(text: str) -> str:
    """The canonical form exact match compares: segmented tokens (articles dropped) joined by spaces."""
    return " ".join(segment(text, drop_articles=True))


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised answer equals the normalised reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 on :func:`segment` tokens (characters for CJK), articles dropped."""
    pred, ref = segment(prediction, True), segment(reference, True)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) from the LCS of :func:`segment` tokens (characters for CJK); articles kept."""
    pred, ref = segment(prediction), segment(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_length(text: str) -> int:
    """Length of an answer in :func:`segment` tokens (words, or characters for CJK)."""
    return len(segment(text))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0–100) by sacrebleu; the "zh" tokenizer when any reference holds CJK text."""
    import sacrebleu

    if not predictions:
        return 0.0
    tokenize = "zh" if any(has_cjk(r) for r in references) else "13a"
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tokenize).score)


def sentence_bleu(prediction: str, reference: str) -> float:
    """Smoothed sentence BLEU (0–100), used to rank single answers."""
    import sacrebleu

    tokenize = "zh" if has_cjk(reference) else "13a"
    return float(sacrebleu.sentence_bleu(prediction, [reference], tokenize=tokenize).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0–100, character n-grams up to 6, beta = 2) by sacrebleu; language independent."""
    import sacrebleu

    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Mean exact match / token F1 / ROUGE-L (0–1), corpus BLEU / chrF (0–100) and mean answer length."""
    n = len(predictions)
    if n != len(references):
        raise ValueError(f"{n} predictions but {len(references)} references")
    if n == 0:
        return {"n": 0}
    return {
        "n": n,
        "exact_match": sum(map(exact_match, predictions, references)) / n,
        "token_f1": sum(map(token_f1, predictions, references)) / n,
        "rouge_l": sum(map(rouge_l, predictions, references)) / n,
        "bleu": bleu(predictions, references),
        "chrf": chrf(predictions, references),
        "answer_length": sum(map(answer_length, predictions)) / n,
        "reference_length": sum(map(answer_length, references)) / n,
    }


# ---------------------------------------------------------------- classification
NOT_A_LABEL = "(not a label)"


def _label_key(text: str) -> str:
    # Case, surrounding quotes/punctuation and space-vs-underscore differences do not make a different label.
    text = unicodedata.normalize("NFKC", text or "").strip().strip("\"'`“”‘’.。!！?？:：;；").strip().lower()
    return re.sub(r"[\s_\-]+", "_", text)


def match_label(answer: str, labels: Iterable[str]) -> Optional[str]:
    """The label an answer names (ignoring case, quotes, trailing punctuation, '_' vs ' '), or None."""
    keys = {_label_key(lab): lab for lab in labels}
    key = _label_key(answer)
    if key in keys:
        return keys[key]
    first_line = (answer or "").strip().splitlines()[0] if (answer or "").strip() else ""
    return keys.get(_label_key(first_line))


def classification_metrics(predicted: Sequence[Optional[str]], gold: Sequence[str],
                           labels: Optional[Sequence[str]] = None) -> dict:
    """Accuracy, macro-F1 and a confusion matrix.

    ``predicted`` holds a label or None (the answer named no known label). Macro-F1 averages the per-label F1 over
    the label set (``labels``, default: the gold labels); a None prediction counts as wrong for its gold label and
    adds to no label's predictions. The confusion matrix has one row per gold label and one column per label plus
    ``"(not a label)"``.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} gold labels")
    label_set = list(labels) if labels is not None else sorted(set(gold))
    n = len(gold)
    if n == 0:
        return {"n": 0, "accuracy": 0.0, "macro_f1": 0.0, "labels": label_set, "confusion": []}
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / n
    f1s, per_label = [], {}
    for lab in label_set:
        tp = sum(p == lab and g == lab for p, g in zip(predicted, gold))
        fp = sum(p == lab and g != lab for p, g in zip(predicted, gold))
        fn = sum(p != lab and g == lab for p, g in zip(predicted, gold))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_label[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
        f1s.append(f1)
    columns = label_set + [NOT_A_LABEL]
    index = {lab: i for i, lab in enumerate(columns)}
    rows = {lab: i for i, lab in enumerate(label_set)}
    matrix = [[0] * len(columns) for _ in label_set]
    for p, g in zip(predicted, gold):
        if g in rows:
            matrix[rows[g]][index.get(p, index[NOT_A_LABEL]) if p is not None else index[NOT_A_LABEL]] += 1
    return {"n": n, "accuracy": accuracy, "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
            "in_label_set": sum(p is not None for p in predicted) / n,
            "labels": label_set, "confusion_columns": columns, "confusion": matrix, "per_label": per_label}


def data_language(rows: list[dict]) -> str:
    """"zh" when the (first 50) conversations are mostly Chinese, else "en"."""
    text = " ".join(m.get("content") or "" for c in rows[:50] for m in c.get("messages") or [])
    return "zh" if text and cjk_share(text) > 0.3 else "en"
