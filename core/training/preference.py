"""Preference objectives (DPO, ORPO) on pairs: encoding, the shared-prompt forward, log-probs, losses and metrics.

A pair is one prompt and two answers. Encoding renders the prompt with the chat template and the generation prompt,
and each answer as the assistant turn after it, up to and including its end-of-turn token (only answer tokens are
scored). Too long: the prompt is cut from the left first (its end is what the answers follow), then the answers
from the right.

The prompt is shared by the chosen and the rejected answer, so the fast path runs it ONCE. On CPU the batch runs
as one packed row without padding (each prompt, then its two answers, each answer attending to its prompt); where
per-span attention does not pay (CUDA), the prompts go through the model with a KV cache, repeated for the two
answers. Sliding-window and soft-capped models take the plain path (their attention and head are the model's own). The plain path runs
prompt+answer as separate rows, as TRL does; the tests check both give the same numbers.

Losses follow TRL 1.16 exactly (tests/training/test_preference.py compares them):

* DPO (``loss_type="sigmoid"``): ``-logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` with summed answer
  log-probs; rewards ``beta * (pi - ref)``.
* ORPO: ``NLL(chosen) - lambda * mean(logsigmoid(log_odds))`` with ``log_odds`` from the *mean per-token* answer
  log-probs, ``log(p/(1-p))`` via a stable ``log1mexp``; rewards ``lambda * mean log-prob``. The NLL is over the
  chosen answer's tokens (the ORPO paper, and our SFT's assistant-only labels); TRL's experimental ORPOTrainer
  also counts the prompt's tokens in it.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from core.chat_template import end_token_ids, prompt_ids
from core.data.pairs import PreferencePair

LOGP_CHUNK = 512  # answer tokens whose (tokens x vocabulary) log-softmax is alive at once


# ================================================================ encoding
def pair_messages(pair: PreferencePair, system_prompt: Optional[str]) -> list[dict]:
    """The prompt's messages with the run's system prompt inserted when the pair has none."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in pair.prompt]
    if system_prompt and not any(m["role"] == "system" for m in msgs):
        msgs = [{"role": "system", "content": system_prompt}] + msgs
    return msgs


def continuation_ids(tok, msgs: list[dict], answer: list[dict]) -> list[int]:
    """Ids of the ``answer`` turns after ``msgs``' generation prompt, up to and including the last end token."""
    head = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(msgs + list(answer), tokenize=False)
    ends = end_token_ids(tok)
    if full.startswith(head):
        ids = tok(full[len(head):], add_special_tokens=False)["input_ids"]
        last = max((i for i, t in enumerate(ids) if t in ends), default=None)
        if last is not None:
            return ids[:last + 1]  # the template's trailing newline after the end token is not the answer
    text = "".join(m["content"] for m in answer)  # a template that rewrites earlier turns
    return tok(text, add_special_tokens=False)["input_ids"] + ends[:1]


def encode_pair(tok, pair: PreferencePair, system_prompt: Optional[str], max_len: int) -> Optional[dict]:
    """``{"prompt", "chosen", "rejected", "truncated"}`` token ids within ``max_len`` (prompt + longer answer)."""
    msgs = pair_messages(pair, system_prompt)
    prompt = prompt_ids(tok, msgs)
    chosen, rejected = continuation_ids(tok, msgs, pair.chosen), continuation_ids(tok, msgs, pair.rejected)
    longest = max(len(chosen), len(rejected))
    # The prompt keeps its end; it gives up tokens first but keeps at least half the window when answers are long.
    keep = min(len(prompt), max(max_len - longest, max_len // 2))
    truncated = keep < len(prompt) or len(prompt[-keep:]) + longest > max_len
    prompt = prompt[len(prompt) - keep:]
    room = max_len - len(prompt)
    chosen, rejected = chosen[:room], rejected[:room]
    if not prompt or not chosen or not rejected:
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "truncated": truncated}


# ================================================================ batches
def collate_pairs(examples: list[dict], pad_id: int) -> dict:
    """Tensors of B pairs: prompts (B, P) and answers (2B, A), rows ``[chosen_0..B-1, rejected_0..B-1]``."""
    B = len(examples)
    P = max(len(e["prompt"]) for e in examples)
    answers = [e["chosen"] for e in examples] + [e["rejected"] for e in examples]
    A = max(len(a) for a in answers)
    prompt = torch.full((B, P), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((B, P), dtype=torch.long)
    answer = torch.full((2 * B, A), pad_id, dtype=torch.long)
    answer_mask = torch.zeros((2 * B, A), dtype=torch.long)
    for i, e in enumerate(examples):
        prompt[i, :len(e["prompt"])] = torch.tensor(e["prompt"])
        prompt_mask[i, :len(e["prompt"])] = 1
    for r, a in enumerate(answers):
        answer[r, :len(a)] = torch.tensor(a)
        answer_mask[r, :len(a)] = 1
    batch = {"prompt_ids": prompt, "prompt_mask": prompt_mask, "answer_ids": answer, "answer_mask": answer_mask}
    if all("ref_chosen" in e for e in examples):  # precomputed reference log-probs (full fine-tuning)
        batch["ref_logps"] = torch.tensor([e["ref_chosen"] for e in examples] + [e["ref_rejected"] for e in examples],
                                          dtype=torch.float32)
    return batch


class PairLoader:
    """Encodes pairs and yields collated batches: the preference counterpart of ``SmartDataLoader``."""

    def __init__(self, tok, system_prompt: Optional[str], max_seq_len: int):
        self.tok, self.system_prompt, self.max_seq_len = tok, system_prompt, int(max_seq_len)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def encode_all(self, rows: list[dict]) -> tuple[list[dict], dict]:
        """Encoded pairs from stored rows (``PreferencePair.to_dict()``); pairs that cannot fit are counted."""
        out, dropped, truncated = [], 0, 0
        for row in rows:
            enc = encode_pair(self.tok, PreferencePair.from_dict(row), self.system_prompt, self.max_seq_len)
            if enc is None:
                dropped += 1
                continue
            truncated += enc.pop("truncated")
            out.append(enc)
        return out, {"pairs": len(out), "dropped": dropped, "truncated": truncated}

    def num_batches(self, examples: list[dict], batch_size: int, packing: bool = False) -> int:
        """Batches of ``batch_size`` pairs in one pass."""
        return math.ceil(len(examples) / batch_size)

    def batches(self, examples: list[dict], batch_size: int, *, packing: bool = False, shuffle: bool = True,
                seed: int = 0, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        """Collated batches in a seeded per-epoch order, from batch ``start`` on (resume)."""
        order = (np.random.default_rng(seed + epoch).permutation(len(examples)) if shuffle
                 else np.arange(len(examples)))
        for b in range(start, self.num_batches(examples, batch_size)):
            idx = order[b * batch_size:(b + 1) * batch_size]
            yield collate_pairs([examples[i] for i in idx], self.pad_id)


# ================================================================ log-probs
@contextlib.contextmanager
def head_bypassed(model: nn.Module) -> Iterator[nn.Linear]:
    """The model returns hidden states as 'logits' (the head runs later, in chunks); yields the head."""
    core = getattr(model, "module", model)  # DistributedDataParallel wraps the real model
    head = core.get_output_embeddings()
    core.set_output_embeddings(nn.Identity())
    try:
        yield head
    finally:
        core.set_output_embeddings(head)


def _chunk_logps(hidden: torch.Tensor, weight: torch.Tensor, bias, targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight, bias).float()  # (n, V)
    return logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, dim=1)


def token_logps(hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per row of ``hidden`` (N, C); the (N, V) logits are recomputed in backward, chunk by chunk."""
    outs = []
    for s in range(0, hidden.shape[0], LOGP_CHUNK):
        args = (hidden[s:s + LOGP_CHUNK], head.weight, head.bias, targets[s:s + LOGP_CHUNK])
        grad = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)
        outs.append(checkpoint(_chunk_logps, *args, use_reentrant=False) if grad else _chunk_logps(*args))
    return torch.cat(outs) if outs else hidden.new_zeros(0)


def _row_sums(first: torch.Tensor, rest: torch.Tensor, rest_rows: torch.Tensor) -> torch.Tensor:
    """Per-row sums: each row's first-token value plus its other tokens' values."""
    return first.index_add(0, rest_rows, rest.to(first.dtype))


def _cache_of(out):
    return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else out.past_key_values


def _repeated_cache(prefix, times: int, config):
    """A new cache with ``prefix``'s keys/values repeated ``times`` along the batch (backward sums the copies)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for idx, layer in enumerate(prefix.layers):
        cache.update(layer.keys.repeat(times, 1, 1, 1), layer.values.repeat(times, 1, 1, 1), idx)
    return cache


def fast_answer_logps(model: nn.Module, batch: dict) -> torch.Tensor:
    """Summed answer log-probs (2B,): the prompts run once with a KV cache, both answers against it."""
    pids, pmask = batch["prompt_ids"], batch["prompt_mask"]
    aids, amask = batch["answer_ids"], batch["answer_mask"]
    B, P = pids.shape
    A = aids.shape[1]
    plen = pmask.sum(dim=1)  # (B,)
    last = torch.zeros_like(pmask, dtype=torch.bool)
    last[torch.arange(B), plen - 1] = True  # the last prompt token predicts the first answer token
    keep = torch.zeros_like(amask, dtype=torch.bool)
    keep[:, :-1] = amask[:, 1:].bool()
    positions = torch.arange(P, device=pids.device).unsqueeze(0).expand(B, -1)
    with head_bypassed(model) as head:
        out = model(input_ids=pids, attention_mask=pmask, position_ids=positions, use_cache=True,
                    logits_to_keep=last)
        h_last = out.logits  # (B, C)
        cache = _repeated_cache(_cache_of(out), 2, getattr(model, "module", model).config)
        apos = plen.repeat(2).unsqueeze(1) + torch.arange(A, device=aids.device)  # (2B, A)
        out = model(input_ids=aids, attention_mask=torch.cat([pmask.repeat(2, 1), amask], dim=1),
                    position_ids=apos, cache=cache, use_cache=True, logits_to_keep=keep)
        h_rest = out.logits  # (N, C), row-major over keep
        first = token_logps(h_last.repeat(2, 1), head, aids[:, 0])
        rows = torch.arange(2 * B, device=aids.device).unsqueeze(1).expand(-1, A)[:, 1:][amask[:, 1:].bool()]
        rest = token_logps(h_rest, head, aids[:, 1:][amask[:, 1:].bool()])
    return _row_sums(first, rest, rows)


def packed_answer_logps(model: nn.Module, batch: dict) -> torch.Tensor:
    """Summed answer log-probs (2B,) with no padding: every pair's prompt once, then its chosen and rejected answer,
    all in ONE packed row; each answer attends to its own prompt and causally to itself (``varlen_attention``)."""
    from core.training.varlen import varlen_spans

    pids, aids = batch["prompt_ids"], batch["answer_ids"]
    B = pids.shape[0]
    plen, alen = batch["prompt_mask"].sum(dim=1).tolist(), batch["answer_mask"].sum(dim=1).tolist()
    pieces, positions, spans, reads, rows = [], [], [], [], []
    start = 0
    for i in range(B):
        p, p_start = plen[i], start
        pieces.append(pids[i, :p])
        positions.append(torch.arange(p))
        spans.append((start, p))
        start += p
        for r in (i, B + i):  # chosen, then rejected
            a = alen[r]
            pieces.append(aids[r, :a])
            positions.append(torch.arange(p, p + a))
            spans.append((start, a, p_start, p))
            reads.append(torch.cat([torch.tensor([p_start + p - 1]),  # the prompt's last token predicts the first
                                    torch.arange(start, start + a - 1)]))
            rows.append(torch.full((a,), r))
            start += a
    packed = torch.cat(pieces).unsqueeze(0)  # (1, N)
    dev = packed.device
    targets = torch.cat([aids[r, :alen[r]] for i in range(B) for r in (i, B + i)])
    with head_bypassed(model) as head, varlen_spans(model, spans):
        hidden = model(input_ids=packed, position_ids=torch.cat(positions).unsqueeze(0).to(dev),
                       use_cache=False).logits[0]  # (N, C)
        lp = token_logps(hidden[torch.cat(reads).to(dev)], head, targets)
    return torch.zeros(2 * B, dtype=lp.dtype, device=dev).index_add(0, torch.cat(rows).to(dev), lp)


def _packs(model: nn.Module, batch: dict) -> bool:
    """Whether the packed path runs: attention per span is supported and pays on this device (as for SFT)."""
    from core.device import cpu_tricks
    from core.training.varlen import supported

    return "unpadded" in cpu_tricks(batch["prompt_ids"].device) and supported(getattr(model, "module", model))


def own_head_answer_logps(model: nn.Module, batch: dict) -> torch.Tensor:
    """Summed answer log-probs (2B,) from the model's own logits (a soft-capped head cannot be bypassed)."""
    rows = plain_batch(batch)
    targets = rows["labels"][:, 1:]
    logits = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"], use_cache=False).logits
    picked = logits[:, :-1][targets != -100].float()  # (N, V)
    wanted = targets[targets != -100]
    lp = picked.gather(1, wanted[:, None]).squeeze(1) - torch.logsumexp(picked, dim=1)
    which = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)[targets != -100]
    return torch.zeros(targets.shape[0], dtype=lp.dtype, device=lp.device).index_add(0, which, lp)


def plain_batch(batch: dict, pad_id: int = 0) -> dict:
    """The same pairs as separate prompt+answer rows (2B, T), right-padded, labels only on answers."""
    pids, pmask = batch["prompt_ids"], batch["prompt_mask"]
    aids, amask = batch["answer_ids"], batch["answer_mask"]
    B = pids.shape[0]
    rows, labels = [], []
    for r in range(2 * B):
        p = pids[r % B][pmask[r % B].bool()]
        a = aids[r][amask[r].bool()]
        rows.append(torch.cat([p, a]))
        labels.append(torch.cat([torch.full_like(p, -100), a]))
    T = max(len(x) for x in rows)
    ids = torch.full((2 * B, T), pad_id, dtype=torch.long, device=pids.device)
    lab = torch.full((2 * B, T), -100, dtype=torch.long, device=pids.device)
    mask = torch.zeros((2 * B, T), dtype=torch.long, device=pids.device)
    for r, (x, y) in enumerate(zip(rows, labels)):
        ids[r, :len(x)], lab[r, :len(x)], mask[r, :len(x)] = x, y, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


def plain_answer_logps(model: nn.Module, batch: dict) -> torch.Tensor:
    """Summed answer log-probs (2B,) with prompt+answer as separate rows (the reference path)."""
    rows = plain_batch(batch)
    targets = rows["labels"][:, 1:]
    keep = torch.zeros_like(rows["labels"], dtype=torch.bool)
    keep[:, :-1] = targets != -100
    with head_bypassed(model) as head:
        hidden = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"], use_cache=False,
                       logits_to_keep=keep).logits  # (N, C)
        lp = token_logps(hidden, head, targets[targets != -100])
    which = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)[targets != -100]
    return torch.zeros(targets.shape[0], dtype=lp.dtype, device=lp.device).index_add(0, which, lp)


def answer_logps(model: nn.Module, batch: dict, fast: bool = True) -> torch.Tensor:
    """Summed answer log-probs (2B,) ``[chosen..., rejected...]``, by the shared-prompt path when ``fast``
    (packed without padding where attention can run per span, else the prompt's KV cache repeated)."""
    from core.training.loss import head_reason, row_reason

    core = getattr(model, "module", model)
    if head_reason(core):
        return own_head_answer_logps(model, batch)
    if not fast or row_reason(core, batch["prompt_ids"].shape[1] + batch["answer_ids"].shape[1]):
        return plain_answer_logps(model, batch)  # sliding windows, soft-capped attention: whole rows, padded
    return packed_answer_logps(model, batch) if _packs(model, batch) else fast_answer_logps(model, batch)


# ================================================================ losses
def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO per pair, with the chosen and rejected rewards ``beta * (policy - ref)`` (detached)."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))  # (B,)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def odds_ratio(mean_chosen: torch.Tensor, mean_rejected: torch.Tensor) -> torch.Tensor:
    """``logsigmoid(log odds(chosen) - log odds(rejected))`` per pair, from mean per-token log-probs."""
    mean_chosen, mean_rejected = mean_chosen.float(), mean_rejected.float()
    log_odds = (mean_chosen - mean_rejected) - (log1mexp(mean_chosen) - log1mexp(mean_rejected))
    return F.logsigmoid(log_odds)


def orpo_loss(chosen_nll: torch.Tensor, mean_chosen: torch.Tensor, mean_rejected: torch.Tensor,
              lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ORPO: ``chosen_nll - lam * mean(odds ratio term)``; with rewards ``lam * mean log-prob`` (detached)."""
    ratio = odds_ratio(mean_chosen, mean_rejected)
    return chosen_nll - lam * ratio.mean(), lam * mean_chosen.detach(), lam * mean_rejected.detach()


# ================================================================ one micro-batch
def answer_lengths(batch: dict) -> torch.Tensor:
    """Answer tokens per row (2B,)."""
    return batch["answer_mask"].sum(dim=1)


def reference_logps(model: nn.Module, batch: dict, fast: bool) -> torch.Tensor:
    """The reference's summed answer log-probs: precomputed in the batch, or the model with its method off."""
    if "ref_logps" in batch:
        return batch["ref_logps"]
    from core.peft import adapters_disabled

    with torch.no_grad(), adapters_disabled(getattr(model, "module", model)):
        return answer_logps(model, batch, fast)


def preference_terms(model: nn.Module, batch: dict, objective: str, strength: float, pair_scale: float,
                     token_scale: float, fast: bool = True) -> tuple[torch.Tensor, dict]:
    """(loss to backpropagate, sums of the step's metrics) for one micro-batch.

    The loss is this batch's share of the global step's: per-pair terms times ``pair_scale`` (1 / pairs of the step)
    and, for ORPO's NLL, summed token NLL times ``token_scale`` (1 / chosen answer tokens of the step), so gradient
    accumulation gives the same update as one big batch. ``strength`` is DPO's beta or ORPO's lambda.
    """
    logps = answer_logps(model, batch, fast)
    chosen, rejected = logps.chunk(2)
    lengths = answer_lengths(batch).to(logps.dtype)
    if objective == "dpo":
        ref_c, ref_r = reference_logps(model, batch, fast).to(logps.device).chunk(2)
        losses, r_c, r_r = dpo_loss(chosen, rejected, ref_c, ref_r, strength)
        loss = losses.sum() * pair_scale
    else:
        n_c, n_r = lengths.chunk(2)
        ratio = odds_ratio(chosen / n_c, rejected / n_r)
        loss = -chosen.sum() * token_scale - strength * ratio.sum() * pair_scale
        r_c, r_r = strength * (chosen / n_c).detach(), strength * (rejected / n_r).detach()
    stats = {"pairs": len(chosen), "pref_loss": float(loss.detach()),
             "reward_margin": float((r_c - r_r).sum()), "reward_accuracy": float((r_c > r_r).float().sum()),
             "reward_chosen": float(r_c.sum()), "reward_rejected": float(r_r.sum()),
             "logp_chosen": float(chosen.detach().sum()), "logp_rejected": float(rejected.detach().sum())}
    return loss, stats


def step_metrics(stats: list[dict]) -> dict:
    """Means over the step's pairs of the summed per-batch metrics (the names in PREFERENCE_METRICS)."""
    from core.training.config import PREFERENCE_METRICS

    pairs = sum(s["pairs"] for s in stats)
    return {k: sum(s[k] for s in stats) / max(pairs, 1) for k in PREFERENCE_METRICS}


def precompute_reference(model: nn.Module, loader: PairLoader, examples: list[dict], batch_size: int,
                         device: torch.device) -> None:
    """Store the current (base) model's summed answer log-probs in each example, once, before training."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for b in range(0, len(examples), batch_size):
                part = examples[b:b + batch_size]
                batch = {k: v.to(device) for k, v in collate_pairs(part, loader.pad_id).items()}
                chosen, rejected = answer_logps(model, batch).float().cpu().chunk(2)
                for e, c, r in zip(part, chosen.tolist(), rejected.tolist()):
                    e["ref_chosen"], e["ref_rejected"] = c, r
    finally:
        model.train(was_training)
