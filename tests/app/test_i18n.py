"""Every UI string goes through t(): both languages have the same keys, and every key the code uses exists."""
import json
import re
from pathlib import Path

from ui.i18n import I18N_DIR, t

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
STATIC_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+(?:\.[A-Za-z0-9_?-]+)+)["']""")
DYNAMIC = {
    "step.{}": ("define", "upload", "analyze", "prepare", "choose", "train", "evaluate", "chat_export"),
    "{}.intro": ("define", "upload", "analyze", "prepare", "choose", "train", "evaluate", "chat_export"),
    "home.step.{}": ("define", "upload", "analyze", "prepare", "choose", "train", "evaluate", "chat_export"),
    "method.{}.name": ("lora", "adapter", "prefix", "full", "freeze"),
    "method.{}.explain": ("lora", "adapter", "prefix", "full", "freeze"),
    "format.{}": ("auto", "qa", "alpaca", "prompt_completion", "classification", "messages", "sharegpt", "text"),
    "state.{}": ("queued", "running", "stopping", "stopped", "failed", "completed", "unknown", "damaged"),
    "metric.{}": ("val_loss", "perplexity", "accuracy_gen", "macro_f1_gen", "in_label_set", "accuracy_scored",
                  "macro_f1_scored", "exact_match", "token_f1", "rouge_l", "bleu", "chrf", "answer_length"),
    "train_note.{}": ("first_eval_sampled", "resume_fallback", "unknown"),
    "export.{}.title": ("adapter", "peft", "merged", "report", "gguf"),
    "export.gguf.{}": ("f16", "q8_0"),
    "serve.side.{}": ("tuned", "base"),
    "serve.snippet.{}": ("curl", "python", "env"),
    "preset.{}": ("custom", "quick", "balanced", "thorough"),
    "task.{}": ("knowledge_qa", "classification", "style", "multi_turn"),
    "define.base.{}": ("default", "local", "hub", "tiny"),
    "sample.{}": ("support_en", "support_zh", "routing"),
    "sample.{}.desc": ("support_en", "support_zh", "routing"),
    "analyze.script.{}": ("latin", "han", "other", "none"),
    "analyze.pii.{}": ("email", "phone", "card", "national_id"),
    "evaluate.err.{}": ("empty", "cut_off", "repetition_loop", "label_not_in_set", "wrong_label", "different_language"),
    "role.{}": ("system", "user", "assistant"),
    "evaluate.pairs.fig.{}": ("accuracy", "mean_margin", "logp_chosen", "logp_rejected"),
    "objective.{}": ("dpo", "orpo"),
    "evaluate.pairs.col.{}": ("prompt", "chosen", "rejected", "base", "tuned"),
    "purpose.{}": ("support", "knowledge", "classification", "style", "chat"),
    "model.state.{}": ("loaded", "loading", "cached", "not_loaded"),
    "model.source.{}": ("embedded-gguf", "local", "hub", "tiny"),
}


def test_languages_have_the_same_keys_and_no_empty_strings():
    en = json.loads((I18N_DIR / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((I18N_DIR / "zh.json").read_text(encoding="utf-8"))
    assert set(en) == set(zh), set(en) ^ set(zh)
    assert all(v.strip() for v in en.values()) and all(v.strip() for v in zh.values())
    # placeholders must match, or a format() call fails in one language only
    field = re.compile(r"\{(\w+)")
    assert [k for k in en if set(field.findall(en[k])) != set(field.findall(zh[k]))] == []


def test_every_key_used_in_the_code_exists():
    en = json.loads((I18N_DIR / "en.json").read_text(encoding="utf-8"))
    used = {m for src in SOURCES for m in STATIC_KEY.findall(src.read_text(encoding="utf-8"))}
    used |= {pattern.format(v) for pattern, values in DYNAMIC.items() for v in values}
    assert len(used) > 150
    assert sorted(k for k in used if k not in en) == []


def test_every_metric_code_has_a_translation():
    from core.evaluation.metrics import METRICS

    en = json.loads((I18N_DIR / "en.json").read_text(encoding="utf-8"))
    assert sorted(code for code in METRICS if f"metric.{code}" not in en) == []
    assert DYNAMIC["metric.{}"] == tuple(METRICS)


def test_chinese_strings_are_chinese():
    zh = json.loads((I18N_DIR / "zh.json").read_text(encoding="utf-8"))
    cjk = [k for k, v in zh.items() if re.search(r"[\u4e00-\u9fff]", v)]
    assert len(cjk) / len(zh) > 0.8
    assert t("step.train", "zh") == "训练" and t("step.train", "en") == "Train"
    assert t("missing.key", "zh") == "missing.key"
