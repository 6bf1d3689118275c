"""Run configs from the Choose page's choices (core.run_config): one set of training defaults, a valid config out."""
from __future__ import annotations

from core.defaults import DEFAULT_MODEL, TRAIN_DEFAULTS
from core.run_config import FORM_TRAIN_DEFAULTS, PRESETS, build_run_config, recommended_config
from core.training.config import TrainingConfig
from core.workspace import dataset_dir


def test_form_defaults_are_the_trainers_defaults():
    """The page once started from 2 epochs / 384 tokens / eval every 25 while a config file got 3 / 512 / 50."""
    trainer = TrainingConfig.from_dict({"data": "x.jsonl"}).train
    for key, value in FORM_TRAIN_DEFAULTS.items():
        assert getattr(trainer, key) == value == TRAIN_DEFAULTS[key], key


def test_recommended_config_fills_the_form_keys_and_keeps_the_recommendation():
    rec = {"method": "adapter", "params": {"bottleneck": 16}, "train": {"epochs": 1, "max_steps": 40,
                                                                        "expected_step_s": 0.5}}
    cfg = recommended_config(rec)
    assert cfg["method"] == "adapter" and cfg["adapter"] == {"bottleneck": 16}
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["max_steps"] == 40 and cfg["train"]["expected_step_s"] == 0.5
    assert cfg["train"]["max_seq_len"] == TRAIN_DEFAULTS["max_seq_len"]
    assert "full" not in recommended_config({"method": "full", "train": {}})
    assert "objective" not in cfg and "objective" not in recommended_config({**rec, "objective": "sft"})
    assert recommended_config({**rec, "objective": "orpo"})["objective"] == "orpo"  # preference pairs keep theirs


def test_build_run_config_adds_the_project_and_drops_page_only_keys():
    project = {"run_config": {"method": "lora", "lora": {"r": 4}, "train": {"epochs": 1}, "x_preset": "quick"},
               "active_dataset": "ds-1", "system_prompt": "Be brief.", "name": "My shop / support bot"}
    config = build_run_config(project)
    assert "x_preset" not in config and config["model"] == DEFAULT_MODEL
    assert config["data"] == str(dataset_dir("ds-1")) and config["system_prompt"] == "Be brief."
    assert config["name"] == "My-shop-support-bot"
    project["run_config"]["lora"]["r"] = 99
    assert config["lora"]["r"] == 4  # a copy, not the project's own dict
    assert TrainingConfig.from_dict(config).lora["r"] == 4


def test_presets_only_set_form_train_keys():
    for preset in PRESETS.values():
        assert set(preset) <= set(FORM_TRAIN_DEFAULTS)
        TrainingConfig.from_dict({"data": "x.jsonl", "train": preset})  # each one is valid as it stands
