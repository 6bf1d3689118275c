"""TrainingConfig: defaults, YAML/JSON loading, every problem reported at once, CLI exit 2."""
import json
import subprocess

import pytest

from core.errors import UserError
from core.training.config import TrainingConfig, TrainSection
from tests.training.conftest import ROOT, core_env, train_cmd


def test_defaults_follow_design_and_round_trip():
    cfg = TrainingConfig.from_dict({"data": "some.jsonl", "lora": {"r": 4}})
    assert cfg.method == "lora" and cfg.model == "smollm2-135m-instruct"
    assert cfg.lora == {"r": 4, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    t = cfg.train
    assert (t.epochs, t.batch_size, t.grad_accum, t.lr, t.scheduler, t.warmup_ratio, t.max_seq_len, t.packing,
            t.eval_every, t.save_every, t.seed, t.early_stopping_patience) == (3, 8, 1, None, "cosine", 0.05, 512,
                                                                             False, 50, 100, 42, None)
    again = TrainingConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()


def test_yaml_file_and_saved_json(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: d.jsonl\nmethod: adapter\nadapter: {bottleneck: 16}\ntrain: {epochs: 1, lr: 0.001}\n")
    cfg = TrainingConfig.from_file(path)
    assert cfg.method == "adapter" and cfg.adapter["bottleneck"] == 16 and cfg.train.lr == 0.001
    cfg.save(tmp_path / "config.json")
    assert TrainingConfig.from_file(tmp_path / "config.json").to_dict() == cfg.to_dict()


def test_every_problem_is_listed_once():
    bad = {"method": "lorra", "trian": {}, "train": {"batch_size": 0, "lr": 5, "scheduler": "cos", "bogus": 1,
                                                     "warmup_ratio": 2, "packing": "yes"}}
    with pytest.raises(UserError) as info:
        TrainingConfig.from_dict(bad)
    msg = str(info.value)
    for needle in ("'trian'", "did you mean 'train'", "train.bogus", "data is missing", "did you mean 'lora'",
                   "train.batch_size", "train.lr", "did you mean 'cosine'", "train.warmup_ratio", "train.packing"):
        assert needle in msg, needle
    assert msg.startswith("The run config has 9 problems")


def test_method_section_is_validated_by_peft():
    with pytest.raises(UserError, match=r"lora: r=-1"):
        TrainingConfig.from_dict({"data": "x.jsonl", "lora": {"r": -1}})
    # Only the chosen method's section is built: a leftover lora section does not block an adapter run.
    cfg = TrainingConfig.from_dict({"data": "x.jsonl", "method": "adapter", "lora": {"r": -1}})
    assert cfg.method_params["bottleneck"] == 64


def test_direct_construction_validates():
    with pytest.raises(UserError, match="train.epochs"):
        TrainSection(epochs=0)
    with pytest.raises(UserError, match="data is missing"):
        TrainingConfig()


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        TrainingConfig.from_file(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        TrainingConfig.from_file(broken)


def test_cli_bad_config_exits_2_listing_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("method: lora\nlora: {r: 0}\ntrain: {epochs: -1, scheduler: warm, batch_size: 2.5}\n")
    proc = subprocess.run(train_cmd("--config", str(path)), cwd=ROOT, env=core_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    for needle in ("data is missing", "train.epochs", "train.scheduler", "train.batch_size", "lora: r=0"):
        assert needle in proc.stderr, needle
    assert proc.stdout == ""  # no run id: nothing was created


def test_train_defaults_come_from_core_defaults():
    from dataclasses import asdict

    from core.defaults import TRAIN_DEFAULTS

    section = asdict(TrainSection())
    assert {k: section[k] for k in TRAIN_DEFAULTS} == TRAIN_DEFAULTS
    assert set(section) - set(TRAIN_DEFAULTS) == {"expected_step_s"}


def test_expected_step_s_is_optional_and_checked():
    assert TrainingConfig.from_dict({"data": "x.jsonl"}).train.expected_step_s is None
    cfg = TrainingConfig.from_dict({"data": "x.jsonl", "train": {"expected_step_s": 1.5}})
    assert cfg.train.expected_step_s == 1.5
    with pytest.raises(UserError, match="train.expected_step_s"):
        TrainingConfig.from_dict({"data": "x.jsonl", "train": {"expected_step_s": -1}})


def test_method_problems_are_collected_as_a_list(monkeypatch):
    """Every problem of the method section is listed, whatever the wording of core.peft's message."""
    from core.peft import config as peft_config

    problems = peft_config.section_problems("lora", {"r": -1, "alpha": 0, "bogus": 1})
    assert len(problems) == 3 and not any(p.startswith("- ") for p in problems)
    monkeypatch.setattr(peft_config, "config_from_dict", _raise_without_dashes)
    with pytest.raises(UserError) as info:
        TrainingConfig.from_dict({"data": "x.jsonl", "lora": {"r": -1, "alpha": 0}})
    assert "lora: r=-1 is wrong" in str(info.value) and "lora: alpha=0 is wrong" in str(info.value)


def _raise_without_dashes(method, params):
    """core.peft's check with a message in another wording: the problems list is what counts."""
    problems = [f"{k}={v!r} is wrong" for k, v in params.items()]
    error = UserError(f"{method} is wrong: " + "; ".join(problems))
    error.problems = problems
    raise error


def test_method_sections_default_from_core_peft():
    from core.peft.config import DEFAULT_SECTIONS, LoRAConfig

    cfg = TrainingConfig.from_dict({"data": "x.jsonl"})
    assert {m: getattr(cfg, m) for m in DEFAULT_SECTIONS} == DEFAULT_SECTIONS
    assert LoRAConfig().r == DEFAULT_SECTIONS["lora"]["r"]
