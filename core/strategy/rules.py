"""The selection policy: which method suits a task kind and a dataset size, and why (read top to bottom).

Every reason is a code with parameters (:func:`core.strategy.reasons.reason`); the UI and the CLI turn the codes
into sentences. Sizes are counts of training conversations.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import UserError
from core.peft.config import default_section
from core.strategy.reasons import reason

TINY = 300      # Li & Liang 2021 ran their low-data experiments with 50-500 examples
SMALL = 1000    # below this, every extra trainable weight is a chance to overfit
LARGE = 20000   # from here on full fine-tuning has the data to use its capacity (Biderman et al. 2024)
TASKS = ("style", "knowledge_qa", "classification", "multi_turn", "preference")
TASK_ALIASES = {"support": "knowledge_qa", "persona": "style", "style/persona": "style", "tone": "style",
                "qa": "knowledge_qa", "knowledge": "knowledge_qa", "faq": "knowledge_qa", "routing": "classification",
                "classification/routing": "classification", "intent": "classification", "chat": "multi_turn",
                "multi-turn": "multi_turn", "multiturn": "multi_turn", "dialogue": "multi_turn",
                "preferences": "preference", "dpo": "preference", "orpo": "preference", "pairs": "preference"}
# Typical conversation length in tokens (chat template included) when no quality report says otherwise.
TYPICAL_TOKENS = {"style": 150, "knowledge_qa": 200, "classification": 60, "multi_turn": 400, "preference": 300}
DEFAULT_SEQ_LEN = {"style": 512, "knowledge_qa": 512, "classification": 256, "multi_turn": 1024, "preference": 512}

LORA_QV = default_section("lora")  # rank 8 on query and value
LORA_ATTN = {**LORA_QV, "r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
LORA_ALL = {**LORA_QV, "r": 16, "alpha": 32, "target_modules": "all-linear"}
ADAPTER = default_section("adapter")
PREFIX = default_section("prefix")


@dataclass
class Choice:
    """One method with its section, the reasons for it and, for a runner-up, why it lost."""

    method: str
    params: dict
    reasons: list
    against: list = field(default_factory=list)
    epochs: int | None = None    # whole epochs to plan for (None: epochs_for's rule)
    lr: float | None = None      # peak learning rate (None: the method's recommended rate)


def normalize_task(task: str) -> str:
    """A task kind from its name or an alias ('persona', 'routing', 'chat', ...)."""
    key = str(task).strip().lower().replace(" ", "_")
    key = TASK_ALIASES.get(key, TASK_ALIASES.get(key.replace("_", "-"), key))
    if key not in TASKS:
        raise UserError(f"Unknown task kind {task!r}; choose one of {', '.join(TASKS)} "
                        "(style/persona, knowledge Q&A, classification/routing, multi-turn chat).")
    return key


def task_rules(task: str, n: int, num_labels: int = 0) -> tuple[Choice, Choice]:
    """(primary, runner-up) for a task kind and dataset size, before memory and time are considered."""
    rules = {"style": _style, "knowledge_qa": _knowledge, "classification": _classification,
             "multi_turn": _multi_turn, "preference": _preference}
    return rules[task](n, num_labels)


def _style(n: int, num_labels: int) -> tuple[Choice, Choice]:
    if n < TINY:
        # Li & Liang 2021, Prefix-Tuning: with 50-500 examples prefix tuning beat full fine-tuning on generation.
        return (Choice("prefix", dict(PREFIX), [reason("prefix_low_data", n=n), reason("prefix_conditions_style")]),
                Choice("lora", dict(LORA_QV), [reason("lora_also_works")], [reason("lora_overfits_small", n=n)]))
    # Hu et al. 2021, LoRA: rank 1-8 on W_q and W_v matched full fine-tuning (GPT-2 E2E, GPT-3).
    return (Choice("lora", dict(LORA_QV), [reason("lora_style_low_rank"), reason("lora_merges")]),
            Choice("prefix", dict(PREFIX), [reason("prefix_low_data_edge")], [reason("prefix_takes_context", n=n)]))


def _knowledge(n: int, num_labels: int) -> tuple[Choice, Choice]:
    # Geva et al. 2021: MLP layers act as key-value memories. Hu et al. 2021 (Table 5): adapting more weight
    # types beats a higher rank on one. Dettmers et al. 2023 (QLoRA): all linear layers matched full fine-tuning.
    params = dict(LORA_ALL) if n >= TINY else {**LORA_ALL, "r": LORA_QV["r"], "alpha": LORA_QV["alpha"]}
    rank = reason("lora_rank_qa" if n >= TINY else "lora_rank_qa_small", r=params["r"], n=n)
    return (Choice("lora", params, [reason("lora_all_linear_facts"), rank]),
            Choice("adapter", dict(ADAPTER), [reason("adapter_learns_facts")], [reason("adapter_serial_latency")]))


def _classification(n: int, num_labels: int) -> tuple[Choice, Choice]:
    many = num_labels > 50
    if many and n / num_labels <= 30:
        # assets/calibration.json row issue23-banking77-20: Banking77 at 20 per intent reached 69.6% with r=16 on
        # q,k,v,o, dropout 0, 2 epochs; rows issue23-defaults-64intent / issue23-recommendation-64intent: r=8 on
        # q,v reached 14% and 12% on 64 intents at 15 per intent.
        return (Choice("lora", {**LORA_ATTN, "dropout": 0.0}, [reason("lora_many_labels_measured", labels=num_labels,
                                                                       n=n)], epochs=2),
                Choice("adapter", dict(ADAPTER), [reason("adapter_label_capacity")],
                       [reason("adapter_too_many_weights")]))
    if n < SMALL:
        params = {**LORA_QV, "r": 16, "alpha": 32} if many else dict(LORA_QV)
        reasons = [reason("lora_few_labels", n=n)] + ([reason("lora_many_labels", labels=num_labels)] if many else [])
        return (Choice("lora", params, reasons),
                Choice("adapter", dict(ADAPTER), [reason("adapter_label_capacity")],
                       [reason("adapter_too_many_weights")]))
    # Houlsby et al. 2019: adapters within 0.4% of full fine-tuning on GLUE with ~3.6% of the parameters.
    params = {**ADAPTER, "bottleneck": 128} if many else dict(ADAPTER)
    reasons = [reason("adapter_classification", n=n), reason("adapter_short_label")]
    reasons += [reason("adapter_many_labels", labels=num_labels)] if many else []
    return (Choice("adapter", params, reasons),
            Choice("lora", dict(LORA_QV), [reason("lora_close_second")], [reason("lora_less_capacity")]))


def _multi_turn(n: int, num_labels: int) -> tuple[Choice, Choice]:
    if n < TINY:
        primary = Choice("lora", dict(LORA_QV), [reason("lora_multi_turn_small", n=n)])
    else:
        # Hu et al. 2021, Table 5: at a fixed parameter budget, spreading rank over W_q, W_k, W_v, W_o was best.
        primary = Choice("lora", dict(LORA_ATTN), [reason("lora_attention_multi_turn"), reason("lora_rank16_chat")])
    return primary, Choice("adapter", dict(ADAPTER), [reason("adapter_dialogue")],
                           [reason("adapter_slows_long_chats")])


def _preference(n: int, num_labels: int) -> tuple[Choice, Choice]:
    # Rafailov et al. 2023 (DPO) and Hong et al. 2024 (ORPO) tune with LoRA-sized updates; the objective (DPO or
    # ORPO) is chosen by the selector against the time budget, which counts each one's passes.
    return (Choice("lora", dict(LORA_QV), [reason("lora_preference", n=n)]),
            Choice("adapter", dict(ADAPTER), [reason("adapter_learns_facts")], [reason("adapter_serial_latency")]))


def epochs_for(n: int, method: str) -> int:
    """Fewer passes as data grows: small sets need repetition, large ones do not (and overfit with it)."""
    if n < TINY:
        return 8 if method == "prefix" else 5  # Li & Liang 2021 trained prefixes for 5-10 epochs
    if n < SMALL:
        return 3
    return 2 if n < LARGE else 1


def seq_len_for(task: str, quality: dict | None, max_positions: int) -> tuple[int, dict | None]:
    """Cover 95% of examples (power of two, 64-2048) when the quality report has lengths, else the task's default."""
    p95 = None
    if quality:
        lengths = (quality.get("checks") or {}).get("lengths") or quality.get("lengths") or {}
        p95 = lengths.get("p95")
    if not p95:
        return min(DEFAULT_SEQ_LEN[task], max_positions), None
    seq = 64
    while seq < p95 and seq < 2048:
        seq *= 2
    seq = min(seq, max_positions)
    return seq, reason("seq_covers_p95", seq=seq, p95=p95)


def quality_notes(quality: dict | None) -> list:
    """Data problems worth fixing before training, from the quality report's biggest deductions."""
    if not quality:
        return []
    notes = []
    score = quality.get("score")
    if isinstance(score, (int, float)) and score < 70:
        notes.append(reason("quality_score", score=score))
    for d in (quality.get("deductions") or [])[:3]:
        if isinstance(d, dict) and d.get("points", 0) >= 3 and d.get("fix"):
            notes.append(reason("quality_deduction", cause=d.get("cause", d.get("check", "data")), fix=d["fix"]))
    return notes
