"""The CLI lists every verb and maps bad input to exit code 2, and a missing module to a loud failure."""
import subprocess
import sys

import pytest

from core.__main__ import VERBS, main

DESIGN_VERBS = ["analyze", "prepare", "estimate", "train", "eval", "chat", "export", "bench"]


def test_help_lists_every_verb():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, check=True).stdout
    for verb in DESIGN_VERBS:
        assert verb in out and verb in VERBS


def test_no_verb_is_exit_2(capsys):
    assert main([]) == 2


def test_a_missing_verb_module_fails_loudly(monkeypatch):
    monkeypatch.setitem(VERBS, "bench", ("core.no_such_module", "x", "help"))
    with pytest.raises(ModuleNotFoundError):
        main(["bench"])


def test_bench_verb_runs_bench_in_a_child_and_passes_exit_2_through():
    out = subprocess.run([sys.executable, "-m", "core", "bench", "no-such-bench"], capture_output=True, text=True)
    assert out.returncode == 2 and "Unknown benchmark" in out.stderr
