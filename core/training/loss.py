"""The causal language-modelling loss as a token *sum*, so callers can normalise over a whole (global) batch.

Returning (sum, count) rather than a mean is what makes gradient accumulation and multi-process training exact:
the trainer divides by the number of label tokens of the whole optimizer step, whatever way it is split.

Two paths compute the same number:

* ``plain_causal_lm_loss``: logits for every position, then cross-entropy where labels != -100 — what a plain
  Hugging Face loop does.
* ``causal_lm_loss`` (the default): the output head runs only at positions whose *next* token is a label.
  SmolLM2's head is 576 x 49,152 — about a fifth of the model's arithmetic per token — and prompts, system
  prompts and padding never need it. The head and the cross-entropy run in chunks, each chunk's gradients
  computed together with its loss, so no (tokens x vocabulary) float32 tensor is kept for the backward pass
  (only the hidden states' gradients, tokens x 576) and no logits are recomputed.
* Rows of a padded batch that start with the same tokens (the system prompt and chat template every example
  of an assistant shares) run that shared prefix once; the rest of each row attends to it through the KV cache.

Some families compute things the fast path would skip, so ``causal_lm_loss`` takes the plain path for them and
says why (``path_reasons``, reason codes the trainer logs): a soft-capped output head (Gemma 2) needs its logits
from the model itself; attention with a sliding window shorter than the rows (Mistral, Gemma 2/3) or with
soft-capped scores (Gemma 2) is not what the per-example attention computes, so those rows run padded and whole.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100
CE_CHUNK = 1024  # rows of logits alive at once: 1024 x 49,152 x 4 B = 200 MB at most
MIN_SHARED_PREFIX = 4  # below this the extra forward call costs more than the rows it saves
UNPADDED = True  # run padded batches unpadded (core.training.varlen); False keeps the padded forward
UNPAD_MIN_ROW_TOKENS = 64  # ...when rows average at least this many tokens
UNPAD_MIN_PADDING = 1.15  # ...and padded tokens are at least this many times the real ones
HEAD_RECOMPUTE = False  # the head runs once per label row (fused CE); core.strategy reads this for its time model


def model_inputs(batch: dict) -> dict:
    """The forward kwargs of a loader batch: input ids, plus the attention mask or (packed rows) position ids."""
    inputs = {"input_ids": batch["input_ids"]}
    if batch.get("attention_mask") is not None:
        inputs["attention_mask"] = batch["attention_mask"]
    elif batch.get("position_ids") is not None:
        # Packed rows: restarting position ids make transformers' sdpa mask block-diagonal per example.
        inputs["position_ids"] = batch["position_ids"]
        # ...but only without a KV cache: config.use_cache=True would make the model skip that detection and
        # let packed examples attend to each other (verified in tests/data/test_loader.py).
        inputs["use_cache"] = False
    return inputs


def split_rows(batch: dict, max_tokens: int) -> list[dict]:
    """Groups of whole rows (similar lengths together) of at most ``max_tokens`` tokens, trimmed of trailing padding.

    Tokens are counted as the forward computes them: rows x width for a padded forward, the rows' real tokens
    for an unpadded one (``UNPADDED``, padded batches with an attention mask).

    Summing the (loss_sum, n) of the groups gives exactly the batch's, so the trainer runs forward+backward per
    group: peak activation memory is set by ``max_tokens`` rather than by the batch, at the same arithmetic.
    A row longer than ``max_tokens`` forms a group of its own.
    """
    ids = batch["input_ids"]
    lengths = batch.get("row_lengths")
    if lengths is None:
        mask = batch.get("attention_mask")
        lengths = mask.sum(dim=1) if mask is not None else torch.full((ids.shape[0],), ids.shape[1])
    lengths = [int(n) for n in lengths]
    # Unpadded forwards (core.training.varlen) compute real tokens only, so those are what the budget counts.
    unpadded = (UNPADDED and batch.get("attention_mask") is not None
                and sum(lengths) / max(1, len(lengths)) >= UNPAD_MIN_ROW_TOKENS)  # see _unpaddable
    groups: list[list[int]] = []
    width = total = 0
    # Longest rows first: rows of similar length share a group, so trimming leaves little padding to compute.
    for row in sorted(range(len(lengths)), key=lambda r: (-lengths[r], r)):
        n = lengths[row]
        cost = total + n if unpadded else max(width, n) * (len(groups[-1]) + 1 if groups else 1)
        if groups and cost <= max_tokens:
            groups[-1].append(row)
            width, total = max(width, n), total + n
        else:
            groups.append([row])
            width = total = n
    if len(groups) == 1 and max(lengths) == ids.shape[1] and groups[0] == list(range(len(lengths))):
        return [batch]
    return [_take_rows(batch, rows, max(lengths[r] for r in rows)) for rows in groups]


def _take_rows(batch: dict, rows: list[int], width: int) -> dict:
    index = torch.tensor(rows)
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() == 2:
            out[key] = value[index, :width]
        elif torch.is_tensor(value) and value.dim() == 1:
            out[key] = value[index]
        else:
            out[key] = value
    return out


def plain_causal_lm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over label tokens != -100, number of those tokens), full logits."""
    logits = model(**model_inputs(batch)).logits
    labels = batch["labels"].to(logits.device)
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    n_tokens = int((shift_labels != IGNORE_INDEX).sum())
    loss_sum = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
    return loss_sum, n_tokens


def _text_config(model):
    config = getattr(model, "module", model).config
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def head_reason(model) -> Optional[str]:
    """Why this model's loss needs the model's own logits (the plain path), as a reason code; None when it does not."""
    if getattr(_text_config(model), "final_logit_softcapping", None):
        return "final_logit_softcapping"  # the model soft-caps the head's output: a bypassed head would skip it
    return None


def sliding_window(model) -> Optional[int]:
    """The attention window of the model's sliding-window layers, or None when every layer attends to all keys."""
    config = _text_config(model)
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if not window or (types is not None and "sliding_attention" not in types):
        return None  # e.g. Qwen2 carries a sliding_window value with use_sliding_window off
    return int(window)


def row_reason(model, width: int) -> Optional[str]:
    """Why rows ``width`` tokens wide must run padded and whole (no shared prefix, no unpadding), or None."""
    window = sliding_window(model)
    if window is not None and width > window:
        return "sliding_window"  # the per-example attention and the shared-prefix cache attend to every key
    if getattr(_text_config(model), "attn_logit_softcapping", None):
        return "attn_logit_softcapping"  # sdpa cannot soft-cap the scores; the model's own attention does
    return None


def path_reasons(model, max_seq_len: int) -> list[str]:
    """Reason codes for the parts of the fast path this model skips at rows up to ``max_seq_len`` tokens."""
    return [r for r in (head_reason(model), row_reason(model, max_seq_len)) if r]


def causal_lm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """The same (sum, count) as ``plain_causal_lm_loss``, computing the output head only where it is needed."""
    core = getattr(model, "module", model)  # DistributedDataParallel wraps the real model
    head = core.get_output_embeddings() if hasattr(core, "get_output_embeddings") else None
    if not isinstance(head, nn.Linear) or head_reason(core):
        return plain_causal_lm_loss(model, batch)
    labels = batch["labels"]
    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE_INDEX  # position t predicts token t+1
    single = core is model and not row_reason(core, labels.shape[1])  # DDP: one forward per backward
    shared = shared_prefix_length(batch, keep) if single else 0
    with _head_bypassed(core, head):
        if single and _unpaddable(model, batch):
            hidden = _unpadded_forward(model, batch, keep, shared)
        elif shared:
            hidden = _forward_after_shared_prefix(model, batch, keep, shared)
        else:
            hidden = model(**model_inputs(batch), logits_to_keep=keep.to(labels.device)).logits  # (N, C)
    wanted = targets[targets != IGNORE_INDEX].to(hidden.device)  # (N,), same row-major order as hidden
    return chunked_cross_entropy(hidden, head.weight, head.bias, wanted, chunk=CE_CHUNK), int(wanted.numel())


def shared_prefix_length(batch: dict, keep: torch.Tensor) -> int:
    """Leading tokens that every row of a padded batch has in common and that need no output head, or 0.

    Every example of an assistant starts with the same system prompt and chat-template tokens (often a third to
    a half of a short example). Causal attention makes their hidden states identical in every row, so they are
    computed once and their keys/values shared; the row-wise rest attends to them through the cache.
    """
    ids, mask = batch["input_ids"], batch.get("attention_mask")
    if mask is None or ids.shape[0] < 2:  # packed rows, or nothing to share
        return 0
    same = ((ids == ids[:1]) & (mask == 1)).all(dim=0) & ~keep.any(dim=0)
    length = int(same.int().cumprod(dim=0).sum())  # length of the leading all-true run
    length = min(length, int(mask.sum(dim=1).min()) - 1)  # every row keeps at least one token of its own
    return length if length >= MIN_SHARED_PREFIX else 0


def _unpaddable(model, batch: dict) -> bool:
    """A right-padded batch worth running unpadded, on a model whose attention can run per example."""
    from core.device import cpu_tricks
    from core.training.varlen import supported

    mask = batch.get("attention_mask")
    if mask is not None and "unpadded" not in cpu_tricks(mask.device):
        return False  # on CUDA the padded forward runs sdpa's fused kernels; per-example calls cost launches
    return unpadded_pays(mask) and supported(model)


def unpadded_pays(mask) -> bool:
    """Whether a batch with this 2-D attention mask runs unpadded (``_unpadded_forward``).

    Attention per example costs a few small calls per example and layer: it pays where rows are long and padding
    is a real share of the batch (Bitext-like chats), not for short intent-style rows (measured on SmolLM2:
    Banking77, ~25 tokens per row after the prompt, ran 21% slower unpadded; Bitext 30–160 tokens, 12% faster).
    """
    if not UNPADDED or mask is None or mask.dim() != 2 or mask.shape[0] < 2:
        return False
    if not (bool((mask[:, :-1] >= mask[:, 1:]).all()) and bool(mask[:, 0].all())):  # ones, then zeros
        return False
    real = int(mask.sum())
    return real / mask.shape[0] >= UNPAD_MIN_ROW_TOKENS and mask.numel() >= UNPAD_MIN_PADDING * real


def _unpadded_forward(model, batch: dict, keep: torch.Tensor, shared: int) -> torch.Tensor:
    """Hidden states at ``keep`` positions, with every real token of the batch in one packed row (no padding).

    The shared prefix (if any) runs once and is the cache every example attends to; after it, the rows' own tokens
    are concatenated, position ids continue each row's count, and attention runs per example.
    """
    from core.training.varlen import varlen_spans

    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = [int(n) - shared for n in mask.sum(dim=1)]
    cache = model(input_ids=ids[:1, :shared], use_cache=True, logits_to_keep=1).cache if shared else None
    packed = torch.cat([ids[i, shared:shared + n] for i, n in enumerate(lengths)]).unsqueeze(0)  # (1, N)
    positions = torch.cat([torch.arange(shared, shared + n, device=ids.device) for n in lengths]).unsqueeze(0)
    wanted = torch.cat([keep[i, shared:shared + n] for i, n in enumerate(lengths)]).unsqueeze(0).to(ids.device)
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    with varlen_spans(model, list(zip(starts, lengths))):
        out = model(input_ids=packed, position_ids=positions, cache=cache, use_cache=cache is not None,
                    logits_to_keep=wanted)
    return out.logits  # (N_keep, C), rows in order: the same order as the padded path


def _forward_after_shared_prefix(model, batch: dict, keep: torch.Tensor, shared: int) -> torch.Tensor:
    """Hidden states at ``keep`` positions: the shared prefix runs once (batch 1), the rest of the rows after it."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    rows = ids.shape[0]
    prefix = model(input_ids=ids[:1, :shared], use_cache=True, logits_to_keep=1).cache
    cache = _expanded_cache(prefix, rows, model.config)
    positions = torch.arange(shared, ids.shape[1], device=ids.device).unsqueeze(0).expand(rows, -1)
    out = model(input_ids=ids[:, shared:], attention_mask=mask, position_ids=positions, cache=cache,
                use_cache=True, logits_to_keep=keep[:, shared:].to(ids.device))
    return out.logits  # (N, C)


def _expanded_cache(prefix, rows: int, config):
    """A new cache holding ``prefix``'s keys/values broadcast to ``rows`` rows (a view: backward sums the rows)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for idx, layer in enumerate(prefix.layers):
        cache.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), idx)
    return cache


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias, targets: torch.Tensor,
                          chunk: int | None = None) -> torch.Tensor:
    """sum_i CE(hidden_i @ weight.T + bias, targets_i), never holding more than ``chunk`` rows of logits.

    With gradients on, the head's gradients are computed in the same pass as the loss (``_HeadCrossEntropy``):
    nothing of size (rows x vocabulary) is kept, and the head's logits are not recomputed for the backward pass.
    """
    chunk = chunk or CE_CHUNK
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0  # keeps the graph (and DDP's hooks) alive for an empty micro-batch
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _HeadCrossEntropy.apply(hidden, weight, bias, targets, chunk)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk]
        total = total + F.cross_entropy(F.linear(h, weight, bias).float(), t, reduction="sum")
    return total


class _HeadCrossEntropy(torch.autograd.Function):
    """Output head + summed cross-entropy with the gradients computed chunk by chunk during the forward pass.

    d(sum CE)/d(logits) = softmax(logits) - onehot(target), so each chunk's logits are turned into their gradient
    in place and immediately multiplied back through the head; only d/d(hidden) (rows x hidden) and, when the head
    trains, d/d(weight) survive the chunk. The backward pass just scales them by the incoming gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk):  # noqa: D102 - see the class docstring
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        grad_bias = torch.zeros_like(bias) if bias is not None and ctx.needs_input_grad[2] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start:start + chunk], targets[start:start + chunk]
            logits = F.linear(h, weight, bias).float()  # (n, V)
            picked = logits.gather(1, t[:, None]).squeeze(1)  # (n,)
            peak = logits.amax(dim=1, keepdim=True)  # (n, 1)
            # exp(z - max) and the softmax in place: torch.logsumexp would allocate a second (n, V) buffer.
            grad = logits.sub_(peak).exp_()
            norm = grad.sum(dim=1, keepdim=True)  # (n, 1)
            total += (peak.squeeze(1) + norm.squeeze(1).log() - picked).sum()
            grad.div_(norm)
            grad[torch.arange(len(t), device=t.device), t] -= 1.0
            grad = grad.to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start:start + chunk] = grad @ weight  # (n, C)
            if grad_weight is not None:
                grad_weight += grad.T @ h
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        scale = lambda g: None if g is None else g * grad_out.to(g.dtype)  # noqa: E731
        return scale(grad_hidden), scale(grad_weight), scale(grad_bias), None, None


@contextlib.contextmanager
def _head_bypassed(core, head: nn.Module):
    """Swap the output head for an identity for one forward, so the model returns hidden states as 'logits'."""
    core.set_output_embeddings(nn.Identity())
    try:
        yield
    finally:
        core.set_output_embeddings(head)


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors moved to ``device`` (other values kept)."""
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def label_tokens(batch: dict) -> int:
    """Tokens the loss is computed on (shifted labels that are not IGNORE_INDEX)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def real_tokens(batch: dict, pad_id: Optional[int]) -> int:
    """Non-padding tokens of a batch (packed rows count their lengths)."""
    if batch.get("row_lengths") is not None:
        return int(batch["row_lengths"].sum())
    if batch.get("attention_mask") is not None:
        return int(batch["attention_mask"].sum())
    if pad_id is None:
        return batch["input_ids"].numel()
    return int((batch["input_ids"] != pad_id).sum())
