"""Preference data: three input shapes normalised to PreferencePair, broken rows refused, the pair analysis,
and prepare writing a preference dataset the training side reads back."""
from __future__ import annotations

import gzip
import json

import pytest

from core.__main__ import main
from core.data.dataset import load_pairs, load_split, prepare_dataset
from core.data.kinds import dataset_kind, load_rows
from core.data.pairs import PreferencePair
from core.data.preference import load_preference, read_preference_split
from core.data.preference_quality import analyze_pairs
from core.errors import UserError
from core.workspace import dataset_dir

from .helpers import write_jsonl

ORCA = "preference/orca_dpo_pairs/validation.jsonl"
HH = "preference/hh_rlhf_harmless/test.jsonl.gz"


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


def test_prompt_chosen_rejected_strings(tmp_path):
    rows = [{"prompt": "How do I reset my password?", "chosen": "Open Settings > Account > Reset password.",
             "rejected": "No idea.", "system": "You are a support agent."}]
    pairs, info = load_rows(write_jsonl(tmp_path / "p.jsonl", rows))
    assert (info["kind"], info["format"]) == ("preference", "preference")
    assert pairs == [PreferencePair([{"role": "system", "content": "You are a support agent."},
                                     user("How do I reset my password?")],
                                    [bot("Open Settings > Account > Reset password.")], [bot("No idea.")], {"row": 1})]


def test_prompt_chosen_rejected_message_lists_drop_a_repeated_prompt(tmp_path):
    prompt = [user("Hi, is the shop open on Sunday?")]
    rows = [{"prompt": prompt, "chosen": prompt + [bot("Yes, from 10 to 16.")], "rejected": prompt + [bot("No.")]},
            {"prompt": "Plain prompt", "chosen": [bot("Good.")], "rejected": [bot("Bad.")]}]
    pairs, _ = load_preference(write_jsonl(tmp_path / "u.jsonl", rows))
    assert pairs[0].prompt == prompt and pairs[0].chosen == [bot("Yes, from 10 to 16.")]
    assert pairs[0].rejected == [bot("No.")] and pairs[1].prompt == [user("Plain prompt")]


def test_csv_with_prompt_chosen_rejected(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,chosen,rejected\n"Where is my order?","It ships today.","Dunno"\n', encoding="utf-8")
    pairs, info = load_rows(path)
    assert info["kind"] == "preference" and pairs[0].chosen == [bot("It ships today.")]


def test_openai_dpo_jsonl_real_file(shared_data):
    pairs, info = load_rows(shared_data / ORCA)
    assert (info["format"], len(pairs)) == ("openai_dpo", 284)  # 283 newlines: the last line has none
    assert all([m["role"] for m in p.prompt][-1] == "user" for p in pairs)
    assert [m["role"] for m in pairs[0].prompt] == ["system", "user"]
    assert all(len(p.chosen) == 1 and p.chosen[0]["role"] == "assistant" and p.chosen[0]["content"] for p in pairs)
    source = json.loads((shared_data / ORCA).read_text(encoding="utf-8").split("\n", 1)[0])
    assert pairs[0].chosen[0]["content"] == source["preferred_output"][0]["content"]
    assert pairs[0].rejected[0]["content"] == source["non_preferred_output"][0]["content"]


def test_hh_rlhf_whole_transcripts_real_file(shared_data, tmp_path):
    path = tmp_path / "hh.jsonl"
    path.write_bytes(gzip.decompress((shared_data / HH).read_bytes()))
    pairs, info = load_rows(path)
    assert (info["format"], len(pairs)) == ("transcript_pairs", 2312)
    source = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    def spaced(text):
        return " ".join(text.split())

    for pair, rec in zip(pairs, source):
        assert pair.prompt[0]["role"] == "user" and pair.prompt[-1]["role"] == "user"
        for side in ("chosen", "rejected"):  # prompt + answer give back the transcript: nothing lost or added
            rebuilt = "".join(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}"
                              for m in pair.prompt + getattr(pair, side))
            assert spaced(rebuilt) == spaced(rec[side])


def test_hh_style_strings_share_all_but_the_last_turn(tmp_path):
    head = "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Is the store open today?"
    rows = [{"chosen": head + "\n\nAssistant: Yes, until 8 pm.", "rejected": head + "\n\nAssistant: Maybe."}]
    pairs, info = load_rows(write_jsonl(tmp_path / "hh.jsonl", rows))
    assert info["format"] == "transcript_pairs"
    assert pairs[0].prompt == [user("Hi"), bot("Hello! How can I help?"), user("Is the store open today?")]
    assert (pairs[0].chosen, pairs[0].rejected) == ([bot("Yes, until 8 pm.")], [bot("Maybe.")])


def test_message_list_transcripts(tmp_path):
    head = [user("Hi"), bot("Hello."), user("Open today?")]
    rows = [{"chosen": head + [bot("Yes, until 8 pm.")], "rejected": head + [bot("Maybe.")]}]
    pairs, _ = load_rows(write_jsonl(tmp_path / "t.jsonl", rows))
    assert pairs[0].prompt == head and pairs[0].chosen == [bot("Yes, until 8 pm.")]


@pytest.mark.parametrize("rows,message", [
    ([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}],
     r"Row 2: the 'rejected' field \(rejected\) is missing"),
    ([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": 5, "rejected": "c"}],
     r"Row 2: 'chosen' is a int.*Give a string or a list"),
    ([{"input": {"messages": [user("q")]}, "preferred_output": [bot("a")], "non_preferred_output": [bot("b")]},
      {"input": "q", "preferred_output": [bot("a")], "non_preferred_output": [bot("b")]}],
     r"Row 2: 'input' has no 'messages' list"),
    ([{"chosen": "\n\nHuman: A\n\nAssistant: x\n\nHuman: B\n\nAssistant: y",
       "rejected": "\n\nHuman: A\n\nAssistant: z\n\nHuman: C\n\nAssistant: w"}],
     r"Row 1: chosen and rejected differ before their last 'Assistant:' turn"),
    ([{"prompt": [bot("hello")], "chosen": "b", "rejected": "c"}], r"Row 1: the prompt does not end with a user"),
])
def test_broken_rows_are_user_errors_naming_the_row(tmp_path, rows, message):
    with pytest.raises(UserError, match=message):
        load_rows(write_jsonl(tmp_path / "bad.jsonl", rows))


def _pairs(n=30, longer=True):
    return [PreferencePair([user(f"Question number {i}?")],
                           [bot("A long and careful answer " * (3 if longer else 1) + str(i))],
                           [bot(f"Short {i}" if longer else "A long and careful answer " * 3)], {"row": i + 1})
            for i in range(n)]


def test_analysis_counts_identical_empty_bias_and_duplicate_prompts():
    pairs = _pairs(30)
    pairs[1].rejected = [bot(pairs[1].chosen[0]["content"])]  # identical
    pairs[2].rejected = [bot("  ")]                            # empty side
    pairs[3].prompt = list(pairs[4].prompt)                    # duplicate prompt
    report = analyze_pairs(pairs, {"format": "preference"}, tokenizer=None)
    pref = report["checks"]["preference"]
    assert (pref["identical"], pref["empty"], pref["duplicate_prompts"]) == (1, 1, 1)
    assert pref["chosen_longer_share"] == 1.0 and pref["median_length_ratio"] > 2
    codes = {d["code"]: d for d in report["deductions"]}
    assert codes["pref_identical"]["rows"] == [2] and codes["pref_empty"]["rows"] == [3]
    assert codes["pref_duplicate_prompts"]["rows"] == [5]
    assert "pref_length_bias_longer" in codes and "longer one in 100% of pairs" in codes["pref_length_bias_longer"]["cause"]
    assert report["kind"] == "preference" and report["rows"] == 30 and report["score"] < 100


def test_balanced_lengths_give_no_bias_finding():
    pairs = _pairs(20, longer=True) + _pairs(20, longer=False)
    report = analyze_pairs(pairs, {}, tokenizer=None)
    assert report["checks"]["preference"]["chosen_longer_share"] == 0.5
    assert not any(d["code"].startswith("pref_length_bias") for d in report["deductions"])


def test_prepare_writes_a_preference_dataset(tmp_path):
    rows = [{"prompt": f"Question {i}?", "chosen": f"Helpful answer {i}.", "rejected": f"Curt {i}."}
            for i in range(40)]
    rows[5]["rejected"] = rows[5]["chosen"]  # identical: dropped
    rows[6]["chosen"] = ""                   # empty side: dropped
    dataset_id = prepare_dataset(write_jsonl(tmp_path / "pairs.jsonl", rows), model=None, dedupe=True)
    folder = dataset_dir(dataset_id)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert (meta["kind"], meta["format"]) == ("preference", "preference") and dataset_kind(folder) == "preference"
    assert sum(meta["counts"][s] for s in ("train", "val", "test")) == 38
    drop = next(op for op in meta["operations"] if op["op"] == "drop_empty")
    assert (drop["empty"], drop["identical"]) == (1, 1)
    train = read_preference_split(folder / "splits" / "train.jsonl")
    stored = [json.loads(line) for line in (folder / "splits" / "train.jsonl").read_text().splitlines()]
    assert [p.to_dict() for p in train] == stored and all(isinstance(p, PreferencePair) for p in train)
    assert load_pairs(dataset_id, "val") == read_preference_split(folder / "splits" / "val.jsonl")
    assert json.loads((folder / "quality.json").read_text())["checks"]["preference"]["identical"] == 1
    with pytest.raises(UserError, match="preference pairs"):
        load_split(dataset_id, "train")  # the SFT trainer gets a message, not a KeyError


def test_cli_analyze_and_prepare_preference(shared_data, capsys):
    assert main(["analyze", str(shared_data / ORCA), "--model", "approx", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["kind"], out["format"], out["rows"]) == ("preference", "openai_dpo", 284)
    assert out["checks"]["preference"]["chosen_longer_share"] is not None
    assert main(["prepare", str(shared_data / ORCA), "--model", "approx", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["kind"] == "preference" and meta["counts"]["train"] > 200


def test_cli_refuses_a_broken_preference_file(tmp_path, capsys):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"},
                                                 {"prompt": "a", "chosen": "b", "rejected": None}])
    assert main(["analyze", str(path)]) == 2
    assert "Row 2" in capsys.readouterr().err


def test_explicit_mapping_and_format(tmp_path):
    rows = [{"question": "Q?", "good": "Helpful.", "bad": "Curt."}]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    pairs, info = load_rows(path, mapping={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert info["format"] == "preference" and pairs[0].chosen == [bot("Helpful.")]
    with pytest.raises(UserError, match="needs columns for chosen"):
        load_rows(path, format="transcript_pairs")


def test_load_pairs_of_a_file_holds_out_ten_percent(tmp_path):
    rows = [{"prompt": f"Q{i}?", "chosen": f"Good {i}.", "rejected": f"Bad {i}."} for i in range(50)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    train, val = load_pairs(str(path), "train"), load_pairs(str(path), "val")
    assert (len(train), len(val)) == (45, 5)
    assert not {p.prompt[0]["content"] for p in train} & {p.prompt[0]["content"] for p in val}
    with pytest.raises(UserError, match="preference pairs"):
        load_split(str(path), "train")


def test_openai_column_names_with_a_plain_string_input_read_as_prompt_chosen_rejected(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("input,preferred_output,non_preferred_output\nWhere is it?,Aisle 3.,Dunno\n", encoding="utf-8")
    pairs, info = load_rows(path)
    assert info["format"] == "preference" and pairs[0].prompt == [user("Where is it?")]


def test_pairs_of_one_prompt_stay_in_one_split(tmp_path):
    rows = [{"prompt": f"Question {i // 3}?", "chosen": f"Helpful answer {i}.", "rejected": f"Curt {i}."}
            for i in range(90)]  # 30 prompts, three pairs each
    dataset_id = prepare_dataset(write_jsonl(tmp_path / "pairs.jsonl", rows), model=None)
    folder = dataset_dir(dataset_id)
    prompts = {s: {p.prompt[0]["content"] for p in read_preference_split(folder / "splits" / f"{s}.jsonl")}
               for s in ("train", "val", "test")}
    assert not prompts["train"] & prompts["val"] and not prompts["train"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    op = next(o for o in meta["operations"] if o["op"] == "split")
    assert (op["reason"], op["groups"], op["before"]) == ("grouped", 30, 90)
    assert (op["train"], op["val"], op["test"]) == (72, 9, 9) == tuple(meta["counts"][s] for s in ("train", "val", "test"))


def test_csv_cells_with_json_messages_or_json_text(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text('prompt,chosen,rejected\n"Sort [3, 1, 2]","[1, 2, 3]",'
                    '"[{""role"": ""assistant"", ""content"": ""[3, 2, 1]""}]"\n', encoding="utf-8")
    pairs, _ = load_rows(path)
    assert pairs[0].prompt == [user("Sort [3, 1, 2]")] and pairs[0].chosen == [bot("[1, 2, 3]")]
    assert pairs[0].rejected == [bot("[3, 2, 1]")]  # a JSON message list in a cell is read as messages
