"""Label log-likelihoods from one prompt cache equal a plain full forward of prompt + label."""
from __future__ import annotations

import pytest
import torch

from core.decoding import Runner, label_logprobs, label_token_logprobs
from tests.decoding.helpers import KINDS, METHODS, build, chat_prompts

LABELS = ("refund", "refund_status", "cancel_order", "x", "track_order_now")


@torch.no_grad()
def full_forward_logprobs(model, prompt: list[int], label: list[int]) -> torch.Tensor:
    """Reference: one plain forward of prompt + label; the log-probability of each label token, ``(m,)``."""
    ids = torch.tensor([prompt + label])
    logp = model(input_ids=ids).logits[0].float().log_softmax(-1)       # (n + m, vocab)
    n = len(prompt)
    return torch.stack([logp[n - 1 + j, t] for j, t in enumerate(label)])


@pytest.mark.parametrize("kind,method", [(k, m) for k in KINDS for m in METHODS])
def test_label_scores_equal_full_forward(kind, method):
    model, tok = build(kind, method)
    prompt = chat_prompts(tok)[3]
    labels = [tok(lab + "<|im_end|>", add_special_tokens=False)["input_ids"] for lab in LABELS]
    runner = Runner(model)
    per_token = label_token_logprobs(model, prompt, labels, runner)
    for i, lab in enumerate(labels):
        ref = full_forward_logprobs(model, prompt, lab)
        # float32: the prompt alone and prompt+label in one pass take different kernels (1e-5 seen at -4.7)
        assert torch.allclose(per_token[i, :len(lab)], ref, atol=3e-5, rtol=0), (per_token[i, :len(lab)] - ref)
        assert (per_token[i, len(lab):] == 0).all()
    # sums of ~16 terms near -200 sit at float32's resolution (one ulp at 200 is 1.5e-5): compare relatively
    scores = label_logprobs(model, prompt, labels)
    ref_sums = torch.stack([full_forward_logprobs(model, prompt, lab).sum() for lab in labels])
    assert scores.shape == (len(LABELS),)
    assert torch.allclose(scores, ref_sums, atol=1e-5, rtol=1e-6), (scores - ref_sums).abs().max()
    # the prompt ran once; the labels (right-padded, last token not needed) ran as one batch
    width = max(map(len, labels))
    assert runner.forward_tokens == len(prompt) + len(labels) * (width - 1)
    assert scores.std() > 0.1  # the labels really score differently


@pytest.mark.parametrize("kind", KINDS)
def test_label_chunks_share_one_prompt_run_and_give_the_same_scores(kind):
    model, tok = build(kind, "prefix")
    prompt = chat_prompts(tok)[2]
    labels = [tok(lab + "<|im_end|>", add_special_tokens=False)["input_ids"] for lab in LABELS]
    whole = label_token_logprobs(model, prompt, labels)
    runner = Runner(model)
    chunked = label_token_logprobs(model, prompt, labels, runner, chunk=2)
    assert torch.allclose(chunked, whole, atol=1e-4, rtol=0)  # other batch shapes: float32 rounding only
    # one prompt run, then three label batches (2 + 2 + 1 labels), each only as wide as its own longest label
    widths = [max(map(len, labels[i:i + 2])) - 1 for i in range(0, len(labels), 2)]
    assert runner.forward_tokens == len(prompt) + sum(len(labels[i:i + 2]) * w for i, w in zip(range(0, 5, 2), widths))
