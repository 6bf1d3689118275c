"""Was tuning worth it? Two baselines on the same test prompts and the same metric as the evaluation:

- few-shot: the base model with ``FEW_SHOT_K`` training examples in the prompt (the first rows of the train split,
  one per label for classification data so every label is shown), asked on at most ``FEW_SHOT_MAX`` test prompts
  spread evenly over the split, and compared with the tuned model on those same prompts;
- retrieval: no model at all, the answer of the training row whose question is nearest (MinHash) to the test
  question.

The tuned model beats the baselines when its score is above both.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np

from core.data.minhash import signatures
from core.evaluation.causes import NUM_PERM, row_texts, similarity
from core.evaluation.checks import CheckResult
from core.evaluation.prompts import last_user_text
from core.evaluation.textmetrics import match_label, token_f1

AnswerFn = Callable[[list[list[dict]]], list[str]]
ProgressFn = Callable[[float, str], None]
FEW_SHOT_K = 3   # examples in the few-shot prompt: enough to show the format, short enough for a small context
# Why a sample: the few-shot prompt is 4x longer and the base model rambles to the token limit, so on Banking77's
# 385 test prompts this one baseline took 1,298 s on a shared machine, more than the evaluation's base and tuned
# answers together (979 s); 100 prompts keep the standard error of an accuracy near 0.5 at 0.05.
FEW_SHOT_MAX = 100


def sample_indices(n: int, most: Optional[int]) -> list[int]:
    """At most ``most`` of ``range(n)``, spread evenly (test splits are often grouped by label); 0 or None: all."""
    if not most or n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)}) if most > 1 else [0]


def retrieval_answers(train_rows: Sequence[dict], questions: Sequence[str]) -> list[str]:
    """For each question, the answer of the training row with the nearest question (MinHash)."""
    if not train_rows:
        return ["" for _ in questions]
    pairs = [row_texts(c) for c in train_rows]
    sigs = signatures([q for q, _ in pairs], num_perm=NUM_PERM)
    queries = signatures(list(questions), num_perm=NUM_PERM)
    return [pairs[int(np.argmax(similarity(q, sigs)))][1] for q in queries]


def few_shot_examples(train_rows: Sequence[dict], k: int = FEW_SHOT_K,
                      labels: Optional[Sequence[str]] = None) -> list[tuple[str, str]]:
    """``k`` (question, answer) pairs from the training rows; one per label first when there are labels."""
    pairs = [row_texts(c) for c in train_rows]
    chosen, seen = [], set()
    if labels:
        for q, a in pairs:
            if a in labels and a not in seen and len(chosen) < k:
                chosen.append((q, a))
                seen.add(a)
    for pair in pairs:
        if len(chosen) >= k:
            break
        if pair not in chosen:
            chosen.append(pair)
    return chosen


def few_shot_prompt(messages: list[dict], examples: Sequence[tuple[str, str]]) -> list[dict]:
    """``messages`` with the examples as earlier user/assistant turns, after any system message."""
    system = [m for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    shots = [turn for q, a in examples for turn in ({"role": "user", "content": q},
                                                     {"role": "assistant", "content": a})]
    return system + shots + rest


def score_answers(answers: Sequence[str], references: Sequence[str], labels: Optional[Sequence[str]]) -> float:
    """The evaluation's task metric: accuracy for labels, else mean token F1."""
    if not answers:
        return 0.0
    if labels:
        return sum(match_label(a, labels) == r for a, r in zip(answers, references)) / len(answers)
    return sum(map(token_f1, answers, references)) / len(answers)


def check_baselines(answer_base: Optional[AnswerFn], report: dict, train_rows: Sequence[dict],
                    limit: Optional[int] = None, progress: Optional[ProgressFn] = None,
                    prior: Optional[dict] = None, few_shot_max: Optional[int] = None) -> CheckResult:
    """Tuned vs few-shot base vs retrieval on the report's test prompts (at most ``limit``; the few-shot one on at
    most ``few_shot_max`` of them, FEW_SHOT_MAX when None); ``prior``: the answers stored before training
    (core.evaluation.pretrain_baselines.stored_answers), used instead of asking."""
    t0 = time.perf_counter()
    progress = progress or (lambda f, m: None)
    examples = ((report.get("tuned") or {}).get("examples") or [])
    examples = examples[:limit] if limit else examples
    labels = report.get("labels")
    refs = [e.get("reference", "") for e in examples]
    tuned = [e.get("answer", "") for e in examples]
    metric = "accuracy" if labels else "token_f1"
    progress(0.05, "baselines: retrieval")
    if prior:
        retrieved, few_shot = list(prior["retrieval"]), list(prior["few_shot"])
    else:
        retrieved = retrieval_answers(train_rows, [last_user_text(e.get("messages") or []) for e in examples])
        most = FEW_SHOT_MAX if few_shot_max is None else few_shot_max
        few_shot = _few_shot(answer_base, examples, few_shot_examples(train_rows, FEW_SHOT_K, labels),
                             sample_indices(len(examples), most), progress)
    asked = [i for i, a in enumerate(few_shot) if a is not None]
    scores = {"retrieval": score_answers(retrieved, refs, labels)}
    on_asked = {}
    if asked:
        scores["few_shot"] = score_answers([few_shot[i] for i in asked], [refs[i] for i in asked], labels)
        scores["few_shot_n"] = len(asked)
        on_asked = {"score_on_few_shot_prompts":
                    score_answers([tuned[i] for i in asked], [refs[i] for i in asked], labels)}
    tuned_score = score_answers(tuned, refs, labels)
    items = [{"prompt": last_user_text(e.get("messages") or []), "reference": r, "tuned": ta,
              "retrieval": ra, "few_shot": fa}
             for e, r, ta, ra, fa in zip(examples, refs, tuned, retrieved, few_shot or [None] * len(examples))]
    progress(1.0, "baselines: done")
    # Each baseline is beaten on the prompts it answered: all of them for retrieval, the sample for few-shot.
    beats = bool(examples) and tuned_score > scores["retrieval"] and \
        (not asked or on_asked["score_on_few_shot_prompts"] > scores["few_shot"])
    reused = {"reused_from": prior["source"]} if prior else {}
    return CheckResult(name="baselines", base={**scores, "metric": metric, "k": FEW_SHOT_K, **reused},
                       tuned={"score": tuned_score, "metric": metric, "beats_baselines": beats, **on_asked},
                       items=items, seconds=time.perf_counter() - t0, generated=0 if prior else len(asked),
                       notes=["baselines.beaten" if beats else "baselines.not_beaten"]
                       + (["baselines.reused"] if prior else [])
                       + (["baselines.few_shot_sampled"] if 0 < len(asked) < len(examples) else []))


def _few_shot(answer_base: Optional[AnswerFn], examples: list[dict], shots: list[tuple[str, str]],
              asked: list[int], progress: ProgressFn) -> list[Optional[str]]:
    """The base model's few-shot answers at the ``asked`` positions, None elsewhere."""
    if answer_base is None or not examples:
        return []
    progress(0.1, f"baselines: few-shot base model on {len(asked)} of {len(examples)} prompts")
    answers = answer_base([few_shot_prompt(examples[i]["messages"], shots) for i in asked])
    out: list[Optional[str]] = [None] * len(examples)
    for i, a in zip(asked, answers):
        out[i] = a
    return out


def dataset_baselines(dataset: str, answer_base: Optional[AnswerFn], system_prompt: Optional[str] = None,
                      limit: Optional[int] = None, progress: Optional[ProgressFn] = None) -> CheckResult:
    """Before training: the few-shot and retrieval baselines on a dataset's test split (no tuned figures yet)."""
    from core.data import load_split
    from core.evaluation.metrics import conversation_label, is_classification
    from core.evaluation.prompts import split_conversation

    test, train = load_split(dataset, "test"), load_split(dataset, "train")
    labels = sorted({conversation_label(c) for c in train + test} - {None}) if is_classification(test) else None
    examples = []
    for i, conv in enumerate(test):
        messages, reference = split_conversation(conv, system_prompt)
        examples.append({"index": i, "messages": messages, "answer": "",
                         "reference": conversation_label(conv) if labels else reference})
    result = check_baselines(answer_base, {"labels": labels, "tuned": {"examples": examples}}, train, limit, progress)
    result.tuned, result.notes = {}, []
    return result
