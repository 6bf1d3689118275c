"""Every family x every method trains through the real trainer from a local model folder (as page 1 and the CLI
choose one): the run completes, its loss is finite, the adapter is saved, and a family whose numbers the fast
loss path would change is trained on the plain path with the reason noted."""
import json

import pytest

from core.training.config import TrainingConfig
from core.training.trainer import AdvancedTrainer
from tests.families.builders import FAMILIES, family_model
from tests.training.conftest import make_chat_data, tiny_config

SECTIONS = {"lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "attention", "use_rslora": True},
            "dora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "use_dora": True},
            "adapter": {"bottleneck": 8}, "prefix": {"num_virtual_tokens": 4, "projection_dim": 16},
            "full": {}, "freeze": {"trainable_layers": 1}}
NOTED = {"gemma2": {"final_logit_softcapping", "sliding_window"}, "mistral": {"sliding_window"}, "gemma3": {"sliding_window"}}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each family's tiny model saved in Hugging Face layout (config, safetensors, tokenizer with a template)."""
    out = {}
    for family in FAMILIES:
        model, tok = family_model(family)
        out[family] = tmp_path_factory.mktemp(family)
        model.save_pretrained(out[family])
        tok.save_pretrained(out[family])
    return out


@pytest.mark.parametrize("variant", list(SECTIONS))
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_with_every_method(family, variant, folders, tmp_path):
    method = "lora" if variant == "dora" else variant
    d = tiny_config(make_chat_data(tmp_path / "data.jsonl", n=8), max_steps=2, eval_every=100, save_every=100,
                    batch_size=4, max_eval_examples=2)
    d.update(model=str(folders[family]), method=method)
    d[method] = SECTIONS[variant]
    trainer = AdvancedTrainer(TrainingConfig.from_dict(d), tmp_path / "run")
    assert trainer.train() == "completed"
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["step"] == 2 and status["loss"] == pytest.approx(status["loss"])  # finite
    assert (tmp_path / "run" / "adapter" / "adapter.safetensors").exists()
    reasons = {n["params"]["reason"] for n in status["notes"] if n["code"] == "plain_loss_path"}
    assert reasons == NOTED.get(family, set())


@pytest.mark.parametrize("family", FAMILIES)
def test_the_estimator_follows_the_chosen_model(family, folders):
    """The estimator reads the chosen folder's config: exact parameter counts, the default LoRA included."""
    from core.peft import LoRAConfig, apply_peft, trainable_parameters
    from core.peft.config import default_section
    from tests.strategy.helpers import estimator

    est = estimator(str(folders[family]))
    model = family_model(family)[0]
    assert est.parameters("full").trainable == sum(p.numel() for p in model.parameters())
    lora = est.parameters("lora", default_section("lora"))  # [q_proj, v_proj]: a fused family adapts its qkv
    assert lora.trainable == trainable_parameters(apply_peft(model, LoRAConfig(**default_section("lora"))))[0] > 0


def test_a_chosen_chat_template_is_recorded_with_the_run(folders, tmp_path):
    from core.models import choose_chat_template

    choose_chat_template(str(folders["gpt_neox"]), "plain")
    d = tiny_config(make_chat_data(tmp_path / "data.jsonl", n=8), max_steps=1, eval_every=100, save_every=100)
    d.update(model=str(folders["gpt_neox"]))
    assert AdvancedTrainer(TrainingConfig.from_dict(d), tmp_path / "run").train() == "completed"
    assert json.loads((tmp_path / "run" / "status.json").read_text())["chat_template"] == "plain"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_family_trains_on_cuda_under_autocast(folders, tmp_path):
    d = tiny_config(make_chat_data(tmp_path / "data.jsonl", n=8), max_steps=2, eval_every=1, save_every=100,
                    device="cuda")
    d.update(model=str(folders["qwen2"]))
    trainer = AdvancedTrainer(TrainingConfig.from_dict(d), tmp_path / "run")
    assert trainer.train() == "completed" and trainer.amp_dtype is not None
    assert next(trainer.model.parameters()).is_cuda
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["eval_loss"] == pytest.approx(status["eval_loss"])  # finite
