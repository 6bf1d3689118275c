"""What a preference objective (DPO, ORPO) costs against plain supervised tuning, counted in passes.

Per preference pair, with a PEFT method:
* SFT trains on prompt + chosen: one forward and one backward over p + a tokens.
* ORPO trains the policy on chosen and rejected; the shared prompt runs once: forward + backward over p + 2a.
* DPO does the same, plus a no-grad forward of the reference model (the adapter switched off) over p + 2a.
"""
from __future__ import annotations

from core.defaults import OBJECTIVES

# With frozen base weights a PEFT backward computes input gradients only: about one forward's work (the method's
# own weight gradients are small), so forward + backward is two forward units.
TRAIN_PASS_UNITS = 2.0


def passes(objective: str, prompt_tokens: float, answer_tokens: float) -> dict:
    """Tokens through the policy (forward + backward) and the reference (forward only) for one example or pair."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    answers = answer_tokens if objective == "sft" else 2 * answer_tokens
    policy = prompt_tokens + answers
    return {"policy_tokens": policy, "reference_tokens": policy if objective == "dpo" else 0.0}


def time_factor(objective: str, prompt_tokens: float, answer_tokens: float) -> float:
    """Seconds of one pair under ``objective`` relative to SFT on prompt + chosen."""
    sft = passes("sft", prompt_tokens, answer_tokens)["policy_tokens"] * TRAIN_PASS_UNITS
    p = passes(objective, prompt_tokens, answer_tokens)
    return (p["policy_tokens"] * TRAIN_PASS_UNITS + p["reference_tokens"]) / max(sft, 1e-9)


def answer_share(tokens: float, label_tokens: float) -> float:
    """The answers' share of a dataset's tokens (half when unknown)."""
    return min(1.0, label_tokens / tokens) if tokens and label_tokens else 0.5
