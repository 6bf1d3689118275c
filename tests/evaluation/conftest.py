"""A fabricated run folder: tiny-llama + a random (non-zero) LoRA saved with core.peft, plus its data."""
import csv
import json

import pytest
import torch

from core.fileio import append_jsonl, atomic_write_json

from core.workspace import run_dir

LABELS = ["card_arrival", "exchange_rate", "pin_blocked"]
TEXTS = {"card_arrival": ["Where is my card?", "My card has not arrived yet", "When will the card come?",
                          "Card still not here"],
         "exchange_rate": ["What is the exchange rate?", "How much is a euro in dollars?", "Rate for GBP?",
                           "Which rate do you use?"],
         "pin_blocked": ["My PIN is blocked", "I typed the wrong PIN three times", "Unblock my PIN please",
                         "PIN locked"]}


def write_classification_csv(path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for label, texts in TEXTS.items():
            for t in texts:
                w.writerow([t, label])
    return path


def write_qa_jsonl(path):
    rows = [{"question": "What is the capital of France?", "answer": "Paris"},
            {"question": "法国的首都是哪里？", "answer": "巴黎"},
            {"question": "How many legs has a spider?", "answer": "Eight"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def make_run(tmp_path, run_id="run-test", method="lora", with_adapter=True, data=None):
    from core.models import tiny_model
    from core.peft import LoRAConfig, PrefixConfig, apply_peft, save_adapter

    data = data or write_classification_csv(tmp_path / "intents.csv")
    folder = run_dir(run_id, create=True)
    atomic_write_json(folder / "config.json", {"model": "tiny-llama", "data": str(data), "method": method,
                                               "system_prompt": "Classify the message.", "train": {"seed": 1}})
    for step, loss in ((1, 5.0), (2, 4.2), (3, 3.9)):
        append_jsonl(folder / "metrics.jsonl", {"step": step, "epoch": 0, "loss": loss, "lr": 1e-3})
    append_jsonl(folder / "metrics.jsonl", {"step": 3, "eval_loss": 4.0, "eval_ppl": 54.6})
    if with_adapter:
        model, _ = tiny_model("tiny-llama")
        cfg = LoRAConfig(r=4, alpha=8, target_modules=("q_proj", "v_proj")) if method == "lora" else \
            PrefixConfig(num_virtual_tokens=4, projection_dim=0)
        apply_peft(model, cfg)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():  # a non-zero update so the tuned model differs from the base
            for p in model.parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        save_adapter(model, folder / "adapter")
    return run_id


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and it spares the other processes on this shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def lora_run(tmp_path):
    """A completed LoRA run on a 12-row classification CSV."""
    return make_run(tmp_path)
