"""Prefix tuning through plain forward calls, right-padded training batches and generate() on left-padded batches."""
import pytest
import torch

from core.errors import UserError
from core.peft import PrefixConfig, apply_peft
from tests.peft.helpers import KINDS, fresh, right_padded_batch, train_steps

PROMPTS = ["Hello there, how are you?", "Hi", "What is the capital of France? Answer briefly."]
NEW = 8


def prefixed(kind, projection_dim=16):
    model, tok = fresh(kind)
    torch.manual_seed(0)  # fixed prefix init: the tests compare greedy tokens, which must not hinge on test order
    apply_peft(model, PrefixConfig(num_virtual_tokens=5, projection_dim=projection_dim))
    train_steps(model, right_padded_batch(tok), steps=3, lr=0.05)  # a prefix that matters
    return model, tok


def generate(model, tok, prompts):
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=NEW, do_sample=False, pad_token_id=tok.pad_token_id,
                             output_scores=True, return_dict_in_generate=True)
    return out.sequences[:, -NEW:], torch.stack(out.scores, 1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("projection_dim", [16, 0])
def test_left_padded_generate_equals_each_prompt_alone(kind, projection_dim):
    model, tok = prefixed(kind, projection_dim)
    tokens, scores = generate(model, tok, PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        alone_tokens, alone_scores = generate(model, tok, [prompt])
        assert torch.equal(tokens[i], alone_tokens[0])
        assert (scores[i] - alone_scores[0]).abs().max().item() < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_generate_equals_greedy_recomputation_and_uses_the_prefix(kind):
    model, tok = prefixed(kind)
    ids = tok([PROMPTS[0]], return_tensors="pt")["input_ids"]
    _, scores = generate(model, tok, [PROMPTS[0]])
    for step in range(NEW):  # full forward without a cache at every step
        with torch.no_grad():
            last = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[:, -1]
        assert (last[0] - scores[0, step]).abs().max().item() < 1e-4
        ids = torch.cat([ids, last.argmax(-1, keepdim=True)], dim=1)
    base, _ = fresh(kind)
    _, base_scores = generate(base, tok, [PROMPTS[0]])
    assert (base_scores - scores).abs().max().item() > 1e-3  # the prefix does act during generate()


@pytest.mark.parametrize("kind", KINDS)
def test_right_padded_batch_equals_rows_alone(kind):
    model, tok = prefixed(kind)
    batch = right_padded_batch(tok, PROMPTS)
    with torch.no_grad():
        out = model(**batch)
        total, count = 0.0, 0
        for i in range(len(PROMPTS)):
            n = int(batch["attention_mask"][i].sum())
            row = {k: v[i:i + 1, :n] for k, v in batch.items()}
            alone = model(**row)
            assert (alone.logits[0] - out.logits[i, :n]).abs().max().item() < 1e-5
            total, count = total + alone.loss.item() * (n - 1), count + n - 1
    assert abs(out.loss.item() - total / count) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_explicit_position_ids_count_after_the_prefix(kind):
    model, tok = prefixed(kind)
    batch = right_padded_batch(tok)
    positions = torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"])
    with torch.no_grad():
        implicit = model(**batch).logits
        explicit = model(**batch, position_ids=positions).logits
    assert torch.allclose(implicit, explicit, atol=1e-6)


def test_gradient_checkpointing_is_refused():
    model, tok = fresh("tiny-llama")
    apply_peft(model, PrefixConfig(num_virtual_tokens=2, projection_dim=0))
    model.gradient_checkpointing_enable()
    model.train()
    with pytest.raises(UserError, match="gradient checkpointing"):
        model(**right_padded_batch(tok))


def test_fold_keeps_outputs_and_drops_the_mlp():
    model, tok = prefixed("tiny-gpt2")
    batch = right_padded_batch(tok)
    with torch.no_grad():
        before = model(**batch).logits
    model.prefix_tuning.fold()
    model.prefix_tuning.fold()  # idempotent
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names == ["prefix_tuning.embedding.weight"]
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, before, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_extra_forward_arguments_still_reach_the_model(kind):
    model, tok = prefixed(kind)
    batch = right_padded_batch(tok)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True, use_cache=False)
    layers = model.config.num_hidden_layers
    assert out.hidden_states is not None and len(out.hidden_states) == layers + 1
