"""The data benchmark runs end to end (quick mode) and reports every phase."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_data_bench_quick(shared_data, capsys):
    from bench.data_bench import main

    result = main(quick=True)
    out = capsys.readouterr().out
    assert result["rows"] == 2000 and result["total_s"] > 0
    for phase in ("analyze: quality checks", "prepare --clean --mask-pii --dedupe (all)", "total analyze + prepare"):
        assert phase in out
