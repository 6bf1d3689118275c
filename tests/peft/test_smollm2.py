"""The real default model, SmolLM2-135M-Instruct: parameter counts (on the meta device) and GQA prefix generation."""
import pytest
import torch

from core.peft import AdapterConfig, FreezeConfig, LoRAConfig, PrefixConfig, apply_peft, trainable_parameters
from core.peft.prefix import kv_shape

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def meta_smollm2():
    """A factory of weightless SmolLM2-135M models built from the cached config (no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.models import ensure_default_model

    config = AutoConfig.from_pretrained(ensure_default_model())

    def build():
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    return build


def test_lora_q_v_r8_has_460800_trainable_parameters_like_peft(meta_smollm2):
    model = apply_peft(meta_smollm2(), LoRAConfig(r=8, alpha=16, target_modules=("q_proj", "v_proj")))
    assert trainable_parameters(model)[0] == 460_800
    peft = pytest.importorskip("peft")
    ref = peft.get_peft_model(meta_smollm2(), peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    assert ref.get_nb_trainable_parameters()[0] == 460_800


def test_other_methods_closed_form_on_smollm2(meta_smollm2):
    assert kv_shape(meta_smollm2().config) == (3, 64)  # 9 query heads share 3 key/value heads
    assert trainable_parameters(apply_peft(meta_smollm2(), AdapterConfig()))[0] == 30 * 2 * (2 * 576 * 64 + 64 + 576)
    assert trainable_parameters(apply_peft(meta_smollm2(), FreezeConfig(trainable_layers=2)))[0] == 7_080_768
    p, dkv, m, layers = 20, 192, 512, 30
    expected = p * dkv + (dkv * m + m) + (m * 2 * layers * dkv + 2 * layers * dkv)
    assert trainable_parameters(apply_peft(meta_smollm2(), PrefixConfig()))[0] == expected == 6_012_416
    peft = pytest.importorskip("peft")
    ref = peft.get_peft_model(meta_smollm2(), peft.PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=20, prefix_projection=True, encoder_hidden_size=512))
    assert ref.get_nb_trainable_parameters()[0] == expected


def test_prefix_generate_on_smollm2_left_padded(default_model):
    import copy

    base, tok = default_model
    torch.manual_seed(0)  # a fixed prefix: greedy tokens are compared, so no near-tie may depend on the test order
    model = apply_peft(copy.deepcopy(base), PrefixConfig(num_virtual_tokens=4, projection_dim=32))
    prompts = ["What is the capital of France?", "Hi"]
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts]
    tok.padding_side = "left"

    def run(batch_texts):
        enc = tok(batch_texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=4, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        return out.sequences[:, -4:], torch.stack(out.scores, 1)

    tokens, scores = run(texts)
    for i, text in enumerate(texts):
        alone_tokens, alone_scores = run([text])
        assert torch.equal(tokens[i], alone_tokens[0])
        assert (scores[i] - alone_scores[0]).abs().max().item() < 1e-3
