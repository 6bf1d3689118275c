"""DPO and ORPO: losses equal TRL 1.16's, the shared-prompt path equals the plain one, the adapter-off reference is
the base model, the run config's objective, and a tiny DPO run that learns to prefer the chosen answers."""
from __future__ import annotations

import copy
import json
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from core.data.pairs import PreferencePair
from core.errors import UserError
from core.models import tiny_model
from core.peft import (AdapterConfig, FullConfig, LoRAConfig, PrefixConfig, adapters_disabled, apply_peft,
                       supports_disabling)
from core.training.config import TrainingConfig
from core.training.preference import (PairLoader, answer_logps, collate_pairs, dpo_loss, encode_pair, orpo_loss,
                                      plain_batch, precompute_reference, preference_terms, reference_logps)

TOL = 1e-5
WORDS = ["alpha", "bravo", "charlie", "delta"]


def make_pairs(n: int = 6) -> list[PreferencePair]:
    """Prompts of different lengths; the chosen answer repeats the code's word, the rejected one is off."""
    return [PreferencePair([{"role": "user", "content": f"code {i % 4}" + " please" * (i % 3)}],
                           [{"role": "assistant", "content": " ".join([WORDS[i % 4]] * 2)}],
                           [{"role": "assistant", "content": f"no idea {i}"}]) for i in range(n)]


def peft_model(cfg=None, kind: str = "tiny-llama", seed: int = 0):
    """A tiny model, with ``cfg`` applied and its method's tensors set to random non-zero values."""
    model, tok = tiny_model(kind)
    if cfg is not None:
        apply_peft(model, cfg)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad and cfg.method != "full":
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    model.eval()
    return model, tok


def batch_of(tok, pairs, max_len: int = 128) -> dict:
    loader = PairLoader(tok, "Answer with the code's word.", max_len)
    return collate_pairs(loader.encode_all([p.to_dict() for p in pairs])[0], loader.pad_id)


# ================================================================ encoding
def test_encode_pair_labels_only_the_answer_with_its_end_token():
    _, tok = tiny_model()
    enc = encode_pair(tok, make_pairs(1)[0], "Sys.", 256)
    assert tok.decode(enc["chosen"]) == "alpha alpha<|im_end|>"
    assert tok.decode(enc["rejected"]) == "no idea 0<|im_end|>"
    assert tok.decode(enc["prompt"]).endswith("<|im_start|>assistant\n")
    assert "Sys." in tok.decode(enc["prompt"])


def test_encode_pair_cuts_the_prompt_from_the_left_first():
    _, tok = tiny_model()
    pair = PreferencePair([{"role": "user", "content": "x" * 300 + " END"}],
                          [{"role": "assistant", "content": "yes"}], [{"role": "assistant", "content": "nope"}])
    enc = encode_pair(tok, pair, None, 64)
    assert len(enc["prompt"]) + max(len(enc["chosen"]), len(enc["rejected"])) <= 64
    assert enc["truncated"]
    assert tok.decode(enc["prompt"]).endswith("END<|im_end|>\n<|im_start|>assistant\n")  # the end is kept
    assert tok.decode(enc["rejected"]) == "nope<|im_end|>"  # answers intact


# ================================================================ fast path == plain path
@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("method", ["none", "lora", "adapter", "prefix"])
def test_shared_prompt_path_equals_plain_rows(kind, method):
    cfgs = {"none": None, "lora": LoRAConfig(r=4, alpha=8, target_modules="all-linear"),
            "adapter": AdapterConfig(bottleneck=8), "prefix": PrefixConfig(num_virtual_tokens=3, projection_dim=0)}
    model, tok = peft_model(cfgs[method], kind)
    batch = batch_of(tok, make_pairs(5))
    fast, plain = answer_logps(model, batch, fast=True), answer_logps(model, batch, fast=False)
    assert fast.shape == (10,)
    assert torch.allclose(fast, plain, atol=TOL * 10, rtol=0), (fast - plain).abs().max()


def test_shared_prompt_path_gradients_equal_plain_rows():
    model, tok = peft_model(LoRAConfig(r=4, alpha=8, target_modules=("q_proj", "v_proj")))
    batch = batch_of(tok, make_pairs(4))
    grads = []
    for fast in (True, False):
        model.zero_grad()
        answer_logps(model, batch, fast).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


# ================================================================ reference: adapter off
@pytest.mark.parametrize("cfg", [LoRAConfig(r=4, alpha=8, target_modules="all-linear", use_dora=True),
                                 AdapterConfig(bottleneck=8), PrefixConfig(num_virtual_tokens=3, projection_dim=0)],
                         ids=["dora", "adapter", "prefix"])
def test_adapter_off_reference_is_exactly_the_base_model(cfg):
    base, tok = tiny_model()
    batch = batch_of(tok, make_pairs(4))
    with torch.no_grad():
        want = answer_logps(base, batch)
    model, _ = peft_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    tuned = answer_logps(model, batch).detach()
    assert not torch.allclose(tuned, want, atol=1e-3)  # the method changes the numbers...
    got = reference_logps(model, batch, fast=True)
    assert torch.equal(got, want)  # ...and switched off it is the base, bit for bit
    assert not got.requires_grad
    # No second copy: the same parameters, and the method acts again after the block.
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert torch.equal(answer_logps(model, batch).detach(), tuned)


def test_adapters_disabled_refuses_full_fine_tuning():
    model, _ = peft_model(FullConfig())
    assert not supports_disabling(model)
    with pytest.raises(ValueError):
        with adapters_disabled(model):
            pass


def test_full_fine_tuning_precomputes_the_reference_once():
    model, tok = peft_model(FullConfig())
    loader = PairLoader(tok, None, 128)
    examples, _ = loader.encode_all([p.to_dict() for p in make_pairs(5)])
    precompute_reference(model, loader, examples, 2, torch.device("cpu"))
    batch = collate_pairs(examples, loader.pad_id)
    with torch.no_grad():
        base = answer_logps(model, batch)
    assert torch.allclose(batch["ref_logps"], base, atol=TOL)
    with torch.no_grad():  # training moves the weights; the stored reference does not move with them
        for p in model.parameters():
            p.add_(0.01)
    assert torch.equal(reference_logps(model, batch, fast=True), batch["ref_logps"])


# ================================================================ losses against TRL
def _trl_rows(batch: dict) -> dict:
    """TRL's DPO batch: [chosen rows; rejected rows] of prompt+answer with a completion mask."""
    rows = plain_batch(batch)
    return {"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"],
            "completion_mask": (rows["labels"] != -100).long()}


def _stub(cls, **attrs):
    accel = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x,
                            unwrap_model=lambda m: m)
    obj = object.__new__(cls)
    obj.__dict__.update(accelerator=accel, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                        **attrs)
    return obj


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_equals_trl(beta):
    trl = pytest.importorskip("trl")
    from trl.trainer.utils import add_fused_lm_head

    model, tok = peft_model(LoRAConfig(r=4, alpha=8, target_modules="all-linear"))
    batch = batch_of(tok, make_pairs(6))
    ref_c, ref_r = reference_logps(model, batch, fast=True).chunk(2)
    loss, stats = preference_terms(model, batch, "dpo", beta, 1 / 6, 0.0)

    ref_model = copy.deepcopy(model)
    add_fused_lm_head(ref_model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    trainer = _stub(trl.DPOTrainer, model=ref_model, beta=beta, aux_loss_enabled=False, ld_alpha=None,
                    precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"],
                    loss_weights=[1.0], use_weighting=False, label_smoothing=0.0, _total_train_tokens=0, _tp_size=1)
    inputs = {**_trl_rows(batch), "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
    want = trainer._compute_loss(ref_model, inputs, return_outputs=False).detach()
    assert abs(float(loss.detach()) - float(want)) < TOL
    m = trainer._metrics["eval"]  # the model is in eval mode (no dropout), so TRL files them as eval
    assert abs(stats["reward_margin"] / 6 - m["rewards/margins"][0]) < TOL
    assert abs(stats["reward_accuracy"] / 6 - m["rewards/accuracies"][0]) < TOL
    assert abs(stats["logp_chosen"] / 6 - m["logps/chosen"][0]) < 1e-4  # sums of ~30 token log-probs
    # The bare function: TRL's sigmoid loss, mean over pairs.
    pc, pr = answer_logps(model, batch).chunk(2)
    assert abs(float(dpo_loss(pc, pr, ref_c, ref_r, beta)[0].mean().detach()) - float(want)) < TOL


@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_orpo_loss_equals_trl(lam):
    pytest.importorskip("trl")
    from trl.experimental.orpo import ORPOTrainer

    model, tok = peft_model(LoRAConfig(r=4, alpha=8, target_modules="all-linear"))
    batch = batch_of(tok, make_pairs(6))
    rows = plain_batch(batch)
    labels = rows["labels"]
    loss, stats = preference_terms(model, batch, "orpo", lam, 1 / 6, 1 / int((labels[:6] != -100).sum()))

    with torch.no_grad():
        logits = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"]).logits
    mean_logps = ORPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)  # TRL's per-token mean
    trainer = _stub(ORPOTrainer, beta=lam)
    ratio, r_c, r_r, _, _ = trainer.odds_ratio_loss(mean_logps[:6], mean_logps[6:])
    # TRL's NLL (cross-entropy mean) over the chosen answers' tokens: see the module docstring of preference.py
    nll = torch.nn.functional.cross_entropy(logits[:6, :-1].reshape(-1, logits.shape[-1]), labels[:6, 1:].reshape(-1))
    want = nll - ratio.mean()
    assert abs(float(loss) - float(want)) < TOL
    assert abs(float(orpo_loss(nll, mean_logps[:6], mean_logps[6:], lam)[0]) - float(want)) < TOL
    assert abs(stats["reward_margin"] / 6 - float((r_c - r_r).mean())) < TOL
    assert abs(stats["reward_accuracy"] / 6 - float((r_c > r_r).float().mean())) < TOL


# ================================================================ config
def test_config_objective_and_strengths_are_validated_together():
    cfg = TrainingConfig.from_dict({"data": "d", "objective": "dpo"})
    assert (cfg.objective, cfg.beta, cfg.orpo_lambda, cfg.is_preference) == ("dpo", 0.1, 0.1, True)
    assert TrainingConfig.from_dict({"data": "d"}).objective == "sft"
    with pytest.raises(UserError) as err:
        TrainingConfig.from_dict({"data": "d", "objective": "dop", "beta": 0, "orpo_lambda": "x",
                                  "train": {"epochs": -1}})
    msg = str(err.value)
    assert "4 problems" in msg and "did you mean 'dpo'" in msg and "beta" in msg and "orpo_lambda" in msg


def test_config_error_exits_2(tmp_path):
    from tests.training.conftest import run_train, write_config

    path = write_config(tmp_path / "bad.json", {"data": "x", "objective": "ppo", "beta": -1})
    proc = run_train("--config", str(path))
    assert proc.returncode == 2
    assert "objective" in proc.stderr + proc.stdout and "beta" in proc.stderr + proc.stdout


# ================================================================ a tiny DPO run learns
def write_pair_dataset(folder, n_train: int = 16, n_val: int = 8):
    """A dataset folder with preference splits (rows of PreferencePair.to_dict())."""
    (folder / "splits").mkdir(parents=True)
    pairs = make_pairs(n_train + n_val)
    for name, part in (("train", pairs[:n_train]), ("val", pairs[n_train:]), ("test", pairs[n_train:])):
        (folder / "splits" / f"{name}.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in part))
    (folder / "meta.json").write_text(json.dumps({"kind": "preference"}))  # what Prepare writes for pairs
    return folder


def pair_accuracy_of(model, tok, pairs) -> float:
    with torch.no_grad():
        c, r = answer_logps(model, batch_of(tok, pairs)).chunk(2)
    return float((c > r).float().mean())


@pytest.mark.parametrize("objective,method", [("dpo", "lora"), ("orpo", "lora"), ("dpo", "full")])
def test_preference_run_raises_pair_accuracy_and_logs_reward_metrics(tmp_path, objective, method):
    from core.training.trainer import AdvancedTrainer

    data = write_pair_dataset(tmp_path / "prefs")
    cfg = TrainingConfig.from_dict({
        "model": "tiny-llama", "data": str(data), "method": method, "objective": objective, "beta": 0.5,
        "system_prompt": "Answer with the code's word.", "lora": {"r": 8, "alpha": 16, "dropout": 0.0,
                                                                  "target_modules": "all-linear"},
        "train": {"max_steps": 12, "batch_size": 4, "lr": 1e-2 if method == "lora" else 1e-3, "eval_every": 6,
                  "save_every": 100, "warmup_ratio": 0.0, "seed": 3, "max_seq_len": 96}})
    trainer = AdvancedTrainer(cfg, tmp_path / "run")
    assert trainer.train() == "completed"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r and "reward_margin" in r]
    assert len(steps) == 12
    for key in ("reward_margin", "reward_accuracy", "logp_chosen", "logp_rejected"):
        assert all(isinstance(r[key], float) for r in steps)
    assert steps[-1]["reward_margin"] > steps[0]["reward_margin"]
    evals = [r for r in rows if "eval_loss" in r]
    assert evals[-1]["eval_reward_accuracy"] >= 0.75
    if objective == "orpo":  # ORPO's rewards compare mean per-token log-probs; the summed ones need not move
        return
    pairs = make_pairs(24)[16:]
    base, tok = tiny_model()
    assert pair_accuracy_of(trainer.model.eval(), tok, pairs) > pair_accuracy_of(base, tok, pairs)


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_gradient_accumulation_gives_the_same_step(tmp_path, objective):
    """2 micro-batches of 2 pairs make the same update as 1 batch of 4 (ORPO's NLL normalised over the step)."""
    from core.peft import peft_state_dict
    from core.training.trainer import AdvancedTrainer

    data = write_pair_dataset(tmp_path / "prefs", n_train=4, n_val=0)
    results = []
    for bs, accum in ((4, 1), (2, 2)):
        cfg = TrainingConfig.from_dict({
            "model": "tiny-llama", "data": str(data), "method": "lora", "objective": objective,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "train": {"max_steps": 1, "batch_size": bs, "grad_accum": accum, "lr": 1e-2, "eval_every": 100,
                      "save_every": 100, "warmup_ratio": 0.0, "seed": 3, "max_seq_len": 96}})
        trainer = AdvancedTrainer(cfg, tmp_path / f"run-{bs}")
        assert trainer.train() == "completed"
        line = [json.loads(x) for x in (tmp_path / f"run-{bs}" / "metrics.jsonl").read_text().splitlines()][-1]
        results.append((line, peft_state_dict(trainer.model)))
    (a, wa), (b, wb) = results
    assert abs(a["loss"] - b["loss"]) < TOL and abs(a["reward_margin"] - b["reward_margin"]) < TOL
    assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-5 * max(1.0, a["grad_norm"])  # Adam would hide a scale error
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_fast_path_packs_pairs_without_padding(monkeypatch):
    """On CPU the shared-prompt path runs as one packed row (attention per span), not over padded tensors."""
    from core.training import varlen

    calls = []
    real = varlen.varlen_attention
    monkeypatch.setattr(varlen, "varlen_attention", lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
    model, tok = peft_model(LoRAConfig(r=4, alpha=8, target_modules="all-linear"))
    batch = batch_of(tok, make_pairs(3))
    got = answer_logps(model, batch, fast=True)
    real_tokens = int(batch["prompt_mask"].sum() + batch["answer_mask"].sum())
    assert calls and all(q[0] == 1 and q[2] == real_tokens for q in calls)  # (1, H, N real tokens, D)
    assert torch.allclose(got, answer_logps(model, batch, fast=False), atol=TOL * 10, rtol=0)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma2", "gemma3", "phi3", "gpt2", "gpt_neox"])
def test_pair_logps_equal_the_models_own_logits_in_every_family(family):
    """Sliding windows (8 tokens in the tiny builders) and a soft-capped head leave the fast paths: the answer
    log-probs stay those of the model's own full logits."""
    from core.training.preference import own_head_answer_logps
    from tests.families.builders import family_model

    model, tok = family_model(family)
    batch = batch_of(tok, make_pairs(4))
    with torch.no_grad():
        got, want = answer_logps(model, batch, fast=True), own_head_answer_logps(model, batch)
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()
