"""Every family x every method: save and load give the same logits; LoRA merges to the same logits; the peft
export (fused projections included) loads in HF peft with our logits; greedy chat through our decoder is HF
generate's answer; the "attention" and "all-linear" presets name each family's own layers."""
import pytest
import torch

from core import chat
from core.peft import apply_peft, export_peft, load_adapter, merge_lora, save_adapter
from core.peft.inject import target_presets
from tests.families.builders import FAMILIES, family_model
from tests.families.test_training_matrix import METHODS, TOL, batch, prepared

LORA = [m for m, cfg in METHODS.items() if cfg.method == "lora"]
PRESETS = {  # each family's own names for the two presets
    "llama": (["k_proj", "o_proj", "q_proj", "v_proj"], ["down_proj", "gate_proj", "up_proj"]),
    "phi3": (["o_proj", "qkv_proj"], ["down_proj", "gate_up_proj"]),
    "gpt2": (["c_attn", "c_proj"], ["c_fc"]),
    "gpt_neox": (["dense", "query_key_value"], ["dense_4h_to_h", "dense_h_to_4h"]),
}


def logits_of(model, b: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_gives_the_same_logits(family, method, tmp_path):
    model, b = prepared(family, method), batch("padded")
    save_adapter(model, tmp_path)
    loaded = load_adapter(family_model(family)[0], tmp_path).eval()
    assert (logits_of(loaded, b) - logits_of(model, b)).abs().max().item() < TOL


@pytest.mark.parametrize("method", LORA)
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_merges_to_the_same_logits(family, method):
    model, b = prepared(family, method), batch("padded")
    before = logits_of(model, b)
    merge_lora(model)
    assert (logits_of(model, b) - before).abs().max().item() < TOL


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("targets", ["attention", "all-linear"])
@pytest.mark.parametrize("method", LORA)
@pytest.mark.parametrize("family", FAMILIES)
def test_peft_export_loads_in_peft_with_our_logits(family, method, targets, tmp_path, monkeypatch):
    peft = pytest.importorskip("peft")
    monkeypatch.setattr(METHODS[method], "target_modules", targets)
    model, b = prepared(family, method), batch("padded")
    export_peft(model, tmp_path)
    loaded = peft.PeftModel.from_pretrained(family_model(family)[0], str(tmp_path)).eval()
    ours = {n for n, _ in model.named_parameters() if "lora_A" in n}
    theirs = {n.removeprefix("base_model.model.").replace(".default", "") for n, _ in loaded.named_parameters()
              if "lora_A" in n}
    assert ours == theirs, "peft adapted exactly our layers (a fused projection as one layer)"
    assert (logits_of(loaded, b) - logits_of(model, b)).abs().max().item() < TOL


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_chat_through_our_decoder_is_hf_generate(family, method):
    from core.chat_template import end_token_ids, prompt_ids

    model, tok = prepared(family, method), family_model(family)[1]
    msgs = chat.build_messages("You are helpful.", [("hi", "hello")], "What now?")
    ids = torch.tensor([prompt_ids(tok, msgs)])
    ends = end_token_ids(tok)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             eos_token_id=ends, pad_token_id=ends[0], temperature=None, top_p=None, top_k=None)
    reference = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert chat.generate(model, tok, msgs, max_new_tokens=12) == reference


@pytest.mark.parametrize("family", list(PRESETS))
def test_presets_name_each_familys_own_layers(family):
    attention, mlp_only = PRESETS[family]
    presets = target_presets(family_model(family)[0])
    assert presets["attention"] == attention
    assert presets["all-linear"] == sorted(set(attention) | set(mlp_only))


@pytest.mark.parametrize("family,targets,fused", [
    ("phi3", ("q_proj", "v_proj", "gate_proj", "up_proj"), ["gate_up_proj", "qkv_proj"]),
    ("gpt2", ("q_proj", "v_proj"), ["c_attn"]), ("gpt_neox", ("q_proj", "v_proj"), ["query_key_value"]),
    ("llama", ("q_proj", "v_proj"), ["q_proj", "v_proj"])])
def test_llama_style_default_targets_select_the_fused_layer(family, targets, fused):
    """The default [q_proj, v_proj] (and gate/up) works on families that fuse them: their fused layer is adapted."""
    from core.errors import UserError
    from core.peft import LoRAConfig
    from core.peft.inject import find_targets

    model = family_model(family)[0]
    assert sorted({n.rsplit(".", 1)[-1] for n in find_targets(model, targets)}) == fused
    if family in ("gpt2", "gpt_neox"):  # ungated MLPs: gate_proj has no counterpart, and the error says so
        with pytest.raises(UserError, match="'gate_proj' matches no module"):
            find_targets(model, ("q_proj", "gate_proj"))
    apply_peft(model, LoRAConfig(r=2, target_modules=targets))
    assert {n.split(".")[-3] for n, _ in model.named_parameters() if "lora_A" in n} == set(fused)
