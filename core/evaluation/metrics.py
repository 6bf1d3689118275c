"""MultiMetricEvaluator: validation loss/perplexity, answer metrics, classification scores, label scoring.

One evaluator scores one model at a time (``evaluate_model``) so that the run's evaluation can reuse a single
model object: base first, then the adapter loaded onto it. ``compare`` puts two results side by side; the
decoding settings are the evaluator's, hence the same for both and recorded in the result.
The text metrics and their segmentation (characters for CJK) are documented in ``core.evaluation.textmetrics``.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence

import torch

from core.data.loader import SmartDataLoader
from core.evaluation.generation import Answer, Decoding, generate_batch
from core.evaluation.labels import LabelScorer
from core.evaluation.prompts import prompt_ids, split_conversation
from core.evaluation.textmetrics import (answer_length, classification_metrics, exact_match, match_label, rouge_l,
                                         sentence_bleu, text_metrics, token_f1)
from core.training.loss import causal_lm_loss

ProgressFn = Callable[[float, str], None]


def conversation_label(conv: dict) -> Optional[str]:
    """The classification label of a conversation (``meta.label``), or None."""
    label = (conv.get("meta") or {}).get("label")
    return None if label is None or str(label).strip() == "" else str(label)


def is_classification(convs: Sequence[dict]) -> bool:
    """True when every conversation carries a ``meta.label`` (classification data)."""
    return bool(convs) and all(conversation_label(c) is not None for c in convs)


# ---------------------------------------------------------------- validation loss
def _batches(tok, convs, system_prompt, max_seq_len, batch_size):
    """Validation batches encoded exactly as the trainer encodes them (prompt tokens masked)."""
    loader = SmartDataLoader(tok, system_prompt=system_prompt, max_seq_len=max_seq_len)
    examples, _ = loader.encode_all(list(convs))
    yield from loader.batches(examples, batch_size, packing=False, shuffle=False)


@torch.no_grad()
def validation_loss(model, tok, convs: Sequence[dict], system_prompt: Optional[str] = None, max_seq_len: int = 512,
                    batch_size: int = 8) -> dict:
    """Mean cross-entropy per answer token over ``convs`` and its perplexity (exp of the loss)."""
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for batch in _batches(tok, convs, system_prompt, max_seq_len, batch_size):
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        loss_sum, n = causal_lm_loss(model, batch)
        total, count = total + float(loss_sum), count + int(n)
    if count == 0:
        return {"loss": None, "perplexity": None, "tokens": 0}
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": count}


# ---------------------------------------------------------------- the evaluator
class MultiMetricEvaluator:
    """Scores one model on test conversations: loss, generated-answer metrics, classification, label scoring."""

    def __init__(self, tok, system_prompt: Optional[str] = None, decoding: Optional[Decoding] = None,
                 labels: Optional[Sequence[str]] = None, label_scoring: Optional[bool] = None,
                 max_seq_len: int = 512, loss_batch_size: int = 8, label_scorer_mode: str = "auto"):
        self.tok, self.system_prompt = tok, system_prompt
        self.decoding = decoding or Decoding()
        self.labels = list(labels) if labels else None
        self.label_scoring = bool(self.labels) if label_scoring is None else bool(label_scoring and self.labels)
        self.max_seq_len, self.loss_batch_size, self.label_scorer_mode = max_seq_len, loss_batch_size, label_scorer_mode

    def prompts(self, convs: Sequence[dict]) -> tuple[list[list[dict]], list[str]]:
        """Prompt messages and reference answers (the label for classification data)."""
        msgs, refs = [], []
        for conv in convs:
            prompt, reference = split_conversation(conv, self.system_prompt)
            msgs.append(prompt)
            refs.append(conversation_label(conv) if self.labels else reference)
        return msgs, refs

    def generate(self, model, messages: Sequence[list[dict]], progress: Optional[ProgressFn] = None,
                 label: str = "generating") -> list[Answer]:
        """Greedy (or the configured) answers for prompt message lists."""
        ids = [prompt_ids(self.tok, m) for m in messages]
        return generate_batch(model, self.tok, ids, self.decoding, progress, label)

    def score(self, answers: Sequence[str], references: Sequence[str]) -> dict:
        """Text metrics, plus accuracy/macro-F1/confusion when the evaluator knows a label set."""
        result = {"text": text_metrics(list(answers), list(references))}
        if self.labels:
            predicted = [match_label(a, self.labels) for a in answers]
            result["classification"] = classification_metrics(predicted, list(references), self.labels)
        return result

    def label_score(self, model, messages: Sequence[list[dict]], references: Sequence[str],
                    progress: Optional[ProgressFn] = None) -> dict:
        """Label-scoring mode: each prompt's answer is the label with the highest log-likelihood."""
        scorer = LabelScorer(model, self.tok, self.labels, mode=self.label_scorer_mode)
        t0 = time.perf_counter()
        ids = [prompt_ids(self.tok, m) for m in messages]
        label_ids = scorer.label_ids(messages[0]) if messages else []
        predicted, _ = scorer.predict(ids, label_ids, progress)
        metrics = classification_metrics(predicted, list(references), self.labels)
        metrics.update(mode=scorer.mode, seconds=time.perf_counter() - t0, trie_nodes_scored=scorer.nodes_scored)
        return {"predicted": predicted, "metrics": metrics}

    def evaluate_model(self, model, test: Sequence[dict], val: Sequence[dict] = (),
                       progress: Optional[ProgressFn] = None, name: str = "model") -> dict:
        """Everything for one model: {"loss", "metrics", "label_scoring", "examples"}."""
        progress = progress or (lambda f, m: None)
        msgs, refs = self.prompts(test)
        t0 = time.perf_counter()
        answers = self.generate(model, msgs, lambda f, m: progress(0.7 * f, f"{name}: {m}"))
        gen_s = time.perf_counter() - t0
        result = {"metrics": self.score([a.text for a in answers], refs), "generation_seconds": gen_s}
        progress(0.7, f"{name}: validation loss")
        result["loss"] = validation_loss(model, self.tok, val or test, self.system_prompt, self.max_seq_len,
                                         self.loss_batch_size)
        result["loss"]["split"] = "val" if val else "test"
        scored = None
        if self.label_scoring and msgs:
            scored = self.label_score(model, msgs, refs, lambda f, m: progress(0.75 + 0.25 * f, f"{name}: {m}"))
            result["label_scoring"] = scored["metrics"]
        result["examples"] = [self._example(i, m, r, a, scored) for i, (m, r, a) in enumerate(zip(msgs, refs, answers))]
        progress(1.0, f"{name}: done")
        return result

    def _example(self, i: int, messages: list[dict], reference: str, answer: Answer, scored: Optional[dict]) -> dict:
        ex = {"index": i, "messages": messages, "reference": reference, "answer": answer.text,
              "n_tokens": answer.n_tokens, "finished": answer.finished,
              "exact_match": exact_match(answer.text, reference), "token_f1": token_f1(answer.text, reference),
              "rouge_l": rouge_l(answer.text, reference), "bleu": sentence_bleu(answer.text, reference),
              "answer_length": answer_length(answer.text)}
        if self.labels:
            ex["predicted_label"] = match_label(answer.text, self.labels)
            ex["correct"] = ex["predicted_label"] == reference
            if scored:
                ex["scored_label"] = scored["predicted"][i]
        return ex


# Every comparison row: code -> (English name, higher is better: True/False/None for "neither", a 0-1 share).
# The code is what the app and the HTML report select rows by; the app shows its own translation of it.
METRICS: dict[str, tuple[str, Optional[bool], bool]] = {
    "val_loss": ("validation loss", False, False),
    "perplexity": ("perplexity", False, False),
    "accuracy_gen": ("accuracy (generation)", True, True),
    "macro_f1_gen": ("macro-F1 (generation)", True, True),
    "in_label_set": ("answers in label set", True, True),
    "accuracy_scored": ("accuracy (label scoring)", True, True),
    "macro_f1_scored": ("macro-F1 (label scoring)", True, True),
    "exact_match": ("exact match", True, True),
    "token_f1": ("token F1", True, True),
    "rouge_l": ("ROUGE-L", True, True),
    "bleu": ("BLEU", True, False),
    "chrf": ("chrF", True, False),
    "answer_length": ("answer length (tokens)", None, False),
}
CODE_OF_NAME = {name: code for code, (name, _, _) in METRICS.items()}


def row_code(row: dict) -> Optional[str]:
    """The code of a comparison row (reports written before rows carried codes: looked up by the English name)."""
    return row.get("code") or CODE_OF_NAME.get(row.get("metric"))


def compare(base: dict, tuned: dict) -> list[dict]:
    """Rows of (code, English name, base, tuned, delta) for the headline metrics both results have."""
    rows = []

    def add(code, b, t):
        if b is None or t is None:
            return
        name, higher_is_better, _ = METRICS[code]
        rows.append({"code": code, "metric": name, "base": b, "tuned": t, "delta": t - b,
                     "higher_is_better": higher_is_better})

    add("val_loss", base["loss"].get("loss"), tuned["loss"].get("loss"))
    add("perplexity", base["loss"].get("perplexity"), tuned["loss"].get("perplexity"))
    bc, tc = base["metrics"].get("classification"), tuned["metrics"].get("classification")
    if bc and tc:
        add("accuracy_gen", bc["accuracy"], tc["accuracy"])
        add("macro_f1_gen", bc["macro_f1"], tc["macro_f1"])
        add("in_label_set", bc["in_label_set"], tc["in_label_set"])
    bl, tl = base.get("label_scoring"), tuned.get("label_scoring")
    if bl and tl:
        add("accuracy_scored", bl["accuracy"], tl["accuracy"])
        add("macro_f1_scored", bl["macro_f1"], tl["macro_f1"])
    bt, tt = base["metrics"]["text"], tuned["metrics"]["text"]
    for code in ("exact_match", "token_f1", "rouge_l", "bleu", "chrf", "answer_length"):
        add(code, bt.get(code), tt.get(code))
    return rows
