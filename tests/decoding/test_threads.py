"""Decode threads: the cores other programs leave idle, at least one; an override; the caller's count restored."""
from __future__ import annotations

import torch

from core.decoding import threads as th


def test_idle_threads_counts_whole_idle_cores():
    assert th.idle_threads(0.0, 2) == 2
    assert th.idle_threads(0.05, 2) == 2      # a little background noise still leaves both cores
    assert th.idle_threads(0.5, 2) == 1       # one core busy elsewhere: spinning on it would stall every step
    assert th.idle_threads(1.0, 2) == 1       # never zero
    assert th.idle_threads(0.25, 4) == 3
    assert th.idle_threads(0.0, 1) == 1


def test_override_and_restore(monkeypatch):
    monkeypatch.setenv(th.ENV, "1")
    before = torch.get_num_threads()
    with th.threads_for_decoding() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_reads_the_load_at_most_every_refresh(monkeypatch):
    monkeypatch.delenv(th.ENV, raising=False)
    calls = []

    class Fake:
        def share(self):
            calls.append(1)
            return 0.9

    monkeypatch.setattr(th._State, "load", Fake())
    monkeypatch.setattr(th._State, "fresh", True)
    assert th.decode_threads() == 1 and th.decode_threads() == 1
    assert len(calls) == 1  # the second call within REFRESH_S reused the reading
