"""The CLI lists every verb of DESIGN §3 and maps bad input to exit code 2."""
import subprocess
import sys

from core.__main__ import VERBS, main

DESIGN_VERBS = ["analyze", "prepare", "estimate", "train", "eval", "chat", "export", "bench"]


def test_help_lists_every_verb():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, check=True).stdout
    for verb in DESIGN_VERBS:
        assert verb in out and verb in VERBS


def test_no_verb_is_exit_2(capsys):
    assert main([]) == 2


def test_unbuilt_verb_says_so(monkeypatch, capsys):
    monkeypatch.setitem(VERBS, "bench", ("core.no_such_module", "x", "help"))
    assert main(["bench"]) == 2
    assert "not built yet" in capsys.readouterr().err
