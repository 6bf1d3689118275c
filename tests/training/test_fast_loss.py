"""The fast loss path (head only at label positions, fused chunked cross-entropy, shared prompt prefix run once)
computes the same loss and gradients as the plain path."""
import pytest
import torch

from core.models import tiny_model
from core.peft import AdapterConfig, FullConfig, LoRAConfig, PrefixConfig, apply_peft
from core.training import loss as L

CONFIGS = {
    "lora": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear"),
    "prefix": PrefixConfig(num_virtual_tokens=5, projection_dim=0),
    "adapter": AdapterConfig(bottleneck=8),
    "full": FullConfig(),  # the head (tied to the embeddings) trains too: its gradient comes from the fused CE
}


def _batch(packed: bool, shared: int = 0) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 250, (3, 40), generator=g)
    ids[:, :shared] = ids[0, :shared]  # a system prompt every row starts with
    labels = ids.clone()
    labels[:, :10] = -100
    labels[2, 30:] = -100
    if packed:  # two examples per row, position ids restarting: a block-diagonal mask
        pos = torch.cat([torch.arange(18), torch.arange(22)]).repeat(3, 1)
        return {"input_ids": ids, "labels": labels, "attention_mask": None, "position_ids": pos}
    mask = torch.ones_like(ids)
    mask[2, 30:] = 0
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _loss_and_grads(model, fn, batch):
    model.zero_grad(set_to_none=True)
    total, n = fn(model, batch)
    total.backward()
    return float(total.detach()), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("method", list(CONFIGS))
@pytest.mark.parametrize("unpadded", [True, False], ids=["unpadded", "padded-forward"])
@pytest.mark.parametrize("layout", ["padded", "shared-prefix", "packed"])
@pytest.mark.parametrize("lean", [True, False], ids=["lean-mlp", "plain-mlp"])
def test_fast_path_equals_plain_path(kind, method, layout, unpadded, lean, monkeypatch):
    from core.training import varlen
    from core.training.swiglu import lean_swiglu

    packed = layout == "packed"
    if packed and (method == "prefix" or not unpadded):
        pytest.skip("prefix tuning trains on padded batches, never packed ones; packed rows have no padding")
    monkeypatch.setattr(L, "CE_CHUNK", 7)  # several chunks, one ragged: exercises the chunked loop
    monkeypatch.setattr(L, "UNPADDED", unpadded)
    monkeypatch.setattr(L, "UNPAD_MIN_ROW_TOKENS", 1)  # these rows are short: force the unpadded forward anyway
    monkeypatch.setattr(L, "UNPAD_MIN_PADDING", 1.0)
    calls = []
    real_attention = varlen.varlen_attention
    monkeypatch.setattr(varlen, "varlen_attention", lambda *a, **k: calls.append(1) or real_attention(*a, **k))
    model, _ = tiny_model(kind)
    model = apply_peft(model, CONFIGS[method]).eval()  # eval: no dropout, so both passes see the same network
    with torch.no_grad():  # move off the zero-initialised LoRA B so that every tensor gets a gradient
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    batch = _batch(packed, shared=12 if layout == "shared-prefix" else 0)
    keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
    keep[:, :-1] = batch["labels"][:, 1:] != -100
    # labels start at position 10, so position 9 needs the head: 9 shared tokens run once, the rest per row
    assert L.shared_prefix_length(batch, keep) == (9 if layout == "shared-prefix" else 0)
    plain_loss, plain_n, plain_grads = _loss_and_grads(model, L.plain_causal_lm_loss, batch)
    if lean:  # the trainer's default: the MLPs keep gate and up only and recompute silu(gate) in backward
        assert lean_swiglu(model) == (model.config.num_hidden_layers if kind == "tiny-llama" else 0)
    chunks = []
    real_chunked = L.chunked_cross_entropy
    monkeypatch.setattr(L, "chunked_cross_entropy", lambda h, *a, **k: chunks.append(h.shape[0]) or real_chunked(
        h, *a, **k))
    fast_loss, fast_n, fast_grads = _loss_and_grads(model, L.causal_lm_loss, batch)
    assert chunks and chunks[0] > L.CE_CHUNK, "the loss really ran over several chunks"
    assert fast_n == plain_n == int((batch["labels"][:, 1:] != -100).sum())
    assert fast_loss == pytest.approx(plain_loss, rel=1e-6, abs=1e-5)
    assert plain_grads.keys() == fast_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        assert grad.abs().sum() > 0, f"{name} got no gradient"
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-5, msg=name)
    assert model.get_output_embeddings().__class__.__name__ == "Linear", "the head is restored after the pass"
    layers = model.config.get_text_config().num_hidden_layers
    assert len(calls) == (layers if unpadded and not packed else 0), "per-example attention ran iff unpadded"
    assert model.config._attn_implementation == "sdpa", "the attention implementation is restored"


def test_shared_prefix_stops_before_the_first_label_and_leaves_every_row_a_token():
    ids = torch.tensor([[5, 6, 7, 8, 9, 1, 2], [5, 6, 7, 8, 9, 3, 0], [5, 6, 7, 8, 9, 4, 4]])
    mask = torch.tensor([[1] * 7, [1] * 6 + [0], [1] * 7])
    labels = torch.full_like(ids, -100)
    keep = torch.zeros_like(ids, dtype=torch.bool)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    assert L.shared_prefix_length(batch, keep) == 5
    keep[1, 3] = True  # row 1 has a label at position 4: position 3 needs the head
    assert L.MIN_SHARED_PREFIX > 3 and L.shared_prefix_length(batch, keep) == 0, "3 shared tokens: not worth a call"
    short = {**batch, "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0, 0], [1] * 7])}
    assert L.shared_prefix_length(short, torch.zeros_like(keep)) == 4, "row 1 (5 tokens) keeps one of its own"
    assert L.shared_prefix_length({**batch, "input_ids": ids[:1], "attention_mask": mask[:1]}, keep[:1]) == 0
    assert L.shared_prefix_length({**batch, "attention_mask": None}, keep) == 0, "packed rows share nothing"


def test_short_rows_or_little_padding_keep_the_padded_forward():
    model, _ = tiny_model("tiny-llama")
    ids = torch.randint(0, 250, (4, 80), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 60:] = 0
    mask[3, 50:] = 0  # 270 real tokens: 67.5 per row on average, padded/real = 320/270 = 1.19
    batch = {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}
    assert L._unpaddable(model, batch)
    assert not L._unpaddable(model, {**batch, "attention_mask": torch.ones_like(ids)}), "no padding: no gain"
    short = {"input_ids": ids[:, :30], "attention_mask": mask[:, :30].clone(), "labels": ids[:, :30]}
    short["attention_mask"][3, 10:] = 0
    assert not L._unpaddable(model, short), "rows of ~25 tokens: per-example attention costs more than it saves"
    left = {**batch, "attention_mask": mask.flip(1)}
    assert not L._unpaddable(model, left), "left padding is not handled by the unpadded path"


def test_no_label_tokens_gives_zero_loss_with_a_graph():
    model, _ = tiny_model("tiny-llama")
    model = apply_peft(model, CONFIGS["lora"])
    batch = _batch(False)
    batch["labels"] = torch.full_like(batch["labels"], -100)
    total, n = L.causal_lm_loss(model, batch)
    assert n == 0 and float(total) == 0.0
    total.backward()  # must not raise: DDP needs every rank to run backward


@pytest.mark.parametrize("packing", [True, False])
def test_row_groups_respect_the_budget_and_add_up_to_the_whole_batch(packing, monkeypatch):
    monkeypatch.setattr(L, "UNPAD_MIN_ROW_TOKENS", 1)  # budgets count real tokens when rows run unpadded
    from core.data.loader import SmartDataLoader

    model, tok = tiny_model("tiny-llama")
    model = apply_peft(model, CONFIGS["lora"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    convs = [{"messages": [{"role": "user", "content": "q" * (5 + 7 * i)}, {"role": "assistant", "content": "a" * (3 + i)}]}
             for i in range(9)]
    loader = SmartDataLoader(tok, max_seq_len=120)
    examples = [loader.encode(c) for c in convs]
    (batch,) = list(loader.batches(examples, batch_size=16, packing=packing, shuffle=False))
    groups = L.split_rows(batch, max_tokens=130)
    assert len(groups) > 1
    for g in groups:
        unpadded = L.UNPADDED and g.get("attention_mask") is not None  # then only real tokens are computed
        computed = int(g["row_lengths"].sum()) if unpadded else g["input_ids"].numel()
        assert computed <= 130 or g["input_ids"].shape[0] == 1
        assert int(g["row_lengths"].max()) == g["input_ids"].shape[1], "trailing padding is trimmed"
    whole_loss, whole_n, whole_grads = _loss_and_grads(model, L.causal_lm_loss, batch)
    model.zero_grad(set_to_none=True)
    parts = [L.causal_lm_loss(model, g) for g in groups]
    sum(s for s, _ in parts).backward()
    assert sum(n for _, n in parts) == whole_n
    assert float(sum(s for s, _ in parts)) == pytest.approx(whole_loss, rel=1e-6)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, whole_grads[name], rtol=1e-5, atol=1e-6, msg=name)
