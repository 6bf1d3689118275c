"""SmartDataLoader: labels exactly on assistant turns, honest truncation, deterministic batches, exact packing."""
from __future__ import annotations

import pytest
import torch

from core.data import SmartDataLoader
from core.data.loader import IGNORE
from core.models import tiny_model, tiny_tokenizer

EN = [{"role": "user", "content": "What is the capital of France?"},
      {"role": "assistant", "content": "Paris is the capital of France."}]
ZH = [{"role": "user", "content": "你好，今天天气怎么样？"}, {"role": "assistant", "content": "今天是晴天，适合散步。"},
      {"role": "user", "content": "那明天呢？"}, {"role": "assistant", "content": "明天可能下雨，记得带伞。"}]
MULTI_EN = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Tell me a joke"},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
            {"role": "user", "content": "Why?"}, {"role": "assistant", "content": "To get to the other side."}]


def conv(messages, row=1):
    return {"messages": messages, "meta": {"row": row}}


def learned_spans(example, tok):
    """Decoded runs of consecutive labelled tokens."""
    spans, cur = [], []
    for lab in example["labels"]:
        if lab != IGNORE:
            cur.append(lab)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return [tok.decode(s) for s in spans]


def expected_spans(messages, tok):
    return [m["content"] + tok.eos_token for m in messages if m["role"] == "assistant"]


@pytest.mark.parametrize("messages", [EN, ZH, MULTI_EN], ids=["en-single", "zh-multi", "en-multi"])
def test_labels_are_exactly_the_assistant_turns(messages):
    tok = tiny_tokenizer()
    ex = SmartDataLoader(tok, max_seq_len=1024).encode(conv(messages))
    assert learned_spans(ex, tok) == expected_spans(messages, tok)
    assert tok.decode(ex["input_ids"]) == tok.apply_chat_template(messages, tokenize=False)
    assert all(lab in (IGNORE, tid) for lab, tid in zip(ex["labels"], ex["input_ids"]))


def test_system_prompt_inserted_only_when_missing():
    tok = tiny_tokenizer()
    loader = SmartDataLoader(tok, system_prompt="Be kind.")
    text = tok.decode(loader.encode(conv(EN))["input_ids"])
    assert text.startswith("<|im_start|>system\nBe kind.<|im_end|>")
    text = tok.decode(loader.encode(conv(MULTI_EN))["input_ids"])
    assert "Be kind." not in text and "You are terse." in text


def test_template_that_strips_content():
    tok = tiny_tokenizer()
    tok.chat_template = tok.chat_template.replace("message['content']", "message['content'] | trim")
    messages = [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "  hello  "}]
    ex = SmartDataLoader(tok).encode(conv(messages))
    assert learned_spans(ex, tok) == ["hello" + tok.eos_token]


def test_same_text_in_question_and_answer_labels_the_answer():
    tok = tiny_tokenizer()
    messages = [{"role": "user", "content": "yes"}, {"role": "assistant", "content": "yes"}]
    ex = SmartDataLoader(tok).encode(conv(messages))
    first_label = next(i for i, lab in enumerate(ex["labels"]) if lab != IGNORE)
    assert tok.decode(ex["input_ids"][:first_label]).endswith("<|im_start|>assistant\n")


def test_plain_text_document_fully_learned():
    tok = tiny_tokenizer()
    ex = SmartDataLoader(tok, system_prompt="ignored").encode(conv([{"role": "assistant", "content": "Once upon."}]))
    assert ex["labels"] == ex["input_ids"] and tok.decode(ex["input_ids"]) == "Once upon.<|im_end|>"


def test_truncation_keeps_the_answer_and_reports():
    tok = tiny_tokenizer()
    loader = SmartDataLoader(tok, max_seq_len=96)
    long_prompt = conv([{"role": "user", "content": "blah " * 40}, {"role": "assistant", "content": "Short answer."}], 1)
    long_answer = conv([{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "word " * 40}], 2)
    no_answer = conv([{"role": "user", "content": "anyone?"}], 3)
    fine = conv(EN, 4)
    examples, stats = loader.encode_all([long_prompt, long_answer, no_answer, fine])
    assert len(examples) == 3 and all(len(e["input_ids"]) <= 96 for e in examples)
    assert learned_spans(examples[0], tok) == ["Short answer." + tok.eos_token]  # prompt start cut, answer whole
    assert learned_spans(examples[1], tok)[0].startswith("word word")
    assert stats["truncated"] == 2 and stats["prompt_truncated"] == 1 and stats["answer_truncated"] == 1
    assert stats["answer_truncated_rows"] == [2]
    assert stats["dropped_no_answer"] == 1 and stats["dropped_rows"] == [3]
    assert stats["examples"] == 3 and stats["label_tokens"] == sum(
        sum(lab != IGNORE for lab in e["labels"]) for e in examples)


def test_answer_longer_than_window_starts_at_the_answer():
    tok = tiny_tokenizer()
    loader = SmartDataLoader(tok, max_seq_len=32)
    c = conv([{"role": "user", "content": "x " * 30}, {"role": "assistant", "content": "abcdefghij" * 5}])
    ex = loader.encode(c)
    assert len(ex["input_ids"]) == 32 and all(lab != IGNORE for lab in ex["labels"])


# ---------------------------------------------------------------- batching
def _examples(n=23, seed=0, max_seq_len=160):
    import random

    rng = random.Random(seed)
    tok = tiny_tokenizer()
    loader = SmartDataLoader(tok, max_seq_len=max_seq_len)
    convs = [conv([{"role": "user", "content": "q" * rng.randint(1, 60)},
                   {"role": "assistant", "content": "a" * rng.randint(1, 40)}], i + 1) for i in range(n)]
    examples, _ = loader.encode_all(convs)
    return loader, examples


def _ids(batch):
    return [tuple(row.tolist()) for row in batch["input_ids"]]


def test_padded_batches_shapes_and_masks():
    loader, examples = _examples()
    batches = list(loader.batches(examples, 4, packing=False, shuffle=False))
    assert len(batches) == loader.num_batches(examples, 4, packing=False) == 6
    b = batches[0]
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape == b["position_ids"].shape
    for r, i in enumerate(range(4)):
        n = len(examples[i]["input_ids"])
        assert b["input_ids"][r, :n].tolist() == examples[i]["input_ids"]
        assert b["attention_mask"][r].tolist() == [1] * n + [0] * (b["input_ids"].shape[1] - n)
        assert (b["labels"][r, n:] == IGNORE).all() and (b["input_ids"][r, n:] == loader.pad_id).all()


def test_batches_deterministic_resumable_and_complete():
    loader, examples = _examples()
    for packing in (False, True):
        run = lambda **kw: [_ids(b) for b in loader.batches(examples, 3, packing=packing, seed=5, **kw)]  # noqa
        full = run(epoch=1)
        assert full == run(epoch=1)
        assert full != run(epoch=2)
        assert run(epoch=1, start=2) == full[2:]
        assert len(full) == loader.num_batches(examples, 3, packing=packing)
    seen = []
    for b in loader.batches(examples, 5, packing=False, seed=1):
        seen += [tuple(row[row != loader.pad_id].tolist()) for row in b["input_ids"]]
    assert sorted(seen) == sorted(tuple(e["input_ids"]) for e in examples)


def test_length_grouping_reduces_padding():
    loader, examples = _examples(200)
    grouped = sum(int((b["attention_mask"] == 0).sum()) for b in loader.batches(examples, 8, packing=False))
    plain = sum(int((b["attention_mask"] == 0).sum()) for b in loader.batches(examples, 8, packing=False,
                                                                                shuffle=False))
    assert grouped < plain / 2


def test_packed_rows_restart_positions():
    loader, examples = _examples(40, max_seq_len=400)
    rows = loader.pack(examples)
    assert sorted(i for r in rows for i in r) == list(range(40))
    assert all(sum(len(examples[i]["input_ids"]) for i in r) <= loader.max_seq_len for r in rows)
    assert len(rows) <= 40 / 4  # several examples per row
    for b in loader.batches(examples, 2, packing=True, shuffle=False):
        assert b["attention_mask"] is None
        plan_rows = rows[:2]
        for r, row in enumerate(plan_rows):
            pos, off = b["position_ids"][r].tolist(), 0
            for i in row:
                n = len(examples[i]["input_ids"])
                assert pos[off:off + n] == list(range(n))
                assert b["labels"][r, off].item() == IGNORE  # no learning across the boundary
                off += n
        break


def _per_example_losses(logits, labels):
    """Mean next-token loss of one example's logits/labels (1-D labels)."""
    return torch.nn.functional.cross_entropy(logits[:-1].float(), labels[1:], ignore_index=IGNORE)


def test_packed_loss_equals_separate_loss():
    model, tok = tiny_model("tiny-llama")
    loader = SmartDataLoader(tok, max_seq_len=512)
    convs = [conv(EN, 1), conv(ZH, 2), conv(MULTI_EN, 3),
             conv([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], 4)]
    examples, _ = loader.encode_all(convs)
    (batch,) = list(loader.batches(examples, 1, packing=True, shuffle=False, seed=0))
    (row,) = loader.pack(examples)
    assert len(row) == 4
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        off = 0
        for i in row:
            ids = torch.tensor([examples[i]["input_ids"]])
            labels = torch.tensor(examples[i]["labels"])
            n = ids.shape[1]
            alone = model(input_ids=ids, use_cache=False).logits[0]
            want = _per_example_losses(alone, labels)
            got = _per_example_losses(packed[off:off + n], batch["labels"][0, off:off + n])
            assert abs(want.item() - got.item()) < 1e-5, (i, want.item(), got.item())
            assert torch.allclose(alone, packed[off:off + n], atol=1e-5)
            off += n


@pytest.mark.slow
@pytest.mark.parametrize("messages", [EN, ZH, MULTI_EN], ids=["en-single", "zh-multi", "en-multi"])
def test_labels_with_real_default_tokenizer(messages):
    from core.models import load_tokenizer

    tok = load_tokenizer()
    ex = SmartDataLoader(tok, max_seq_len=1024).encode(conv(messages))
    assert learned_spans(ex, tok) == expected_spans(messages, tok)
    rendered = tok.apply_chat_template(messages, tokenize=False)
    assert tok.decode(ex["input_ids"]) == rendered


def test_packing_needs_use_cache_false_and_the_trainer_passes_it():
    """With the config's default use_cache=True, transformers skips the packed-sequence mask: guard against that."""
    from core.training.loss import model_inputs

    model, tok = tiny_model("tiny-llama")
    loader = SmartDataLoader(tok, max_seq_len=512)
    examples, _ = loader.encode_all([conv(EN, 1), conv(ZH, 2)])
    (batch,) = list(loader.batches(examples, 1, packing=True, shuffle=False))
    (row,) = loader.pack(examples)
    first, second = len(examples[row[0]]["input_ids"]), examples[row[1]]["input_ids"]
    span = slice(first, first + len(second))
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([second]), use_cache=False).logits[0]
        via_trainer = model(**model_inputs(batch)).logits[0, span]
        with_cache = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0, span]
    assert torch.allclose(alone, via_trainer, atol=1e-5)
    assert not torch.allclose(alone, with_cache, atol=1e-3)  # documents why use_cache=False matters


def test_template_errors_become_user_errors():
    from core.errors import UserError

    tok = tiny_tokenizer()
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(UserError, match="row 7.*System role not supported.*remove the system prompt"):
        SmartDataLoader(tok, system_prompt="Be nice.").encode(conv(EN, 7))
    tok.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        SmartDataLoader(tok).encode(conv(EN))
    doc = SmartDataLoader(tok).encode(conv([{"role": "assistant", "content": "plain text works"}]))
    assert tok.decode(doc["input_ids"]) == "plain text works<|im_end|>"
