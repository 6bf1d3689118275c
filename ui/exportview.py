"""The GGUF card of page 8's Export tab: f16 and q8_0 built by a background job, the time it takes, downloads of
the .gguf file and its Ollama Modelfile."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.checkpoints import UsableWeights
from core.export import GGUF_QUANTS, available, gguf_state, start_gguf
from ui.common import duration, guarded, show_error
from ui.i18n import t

POLL_S = 2.0


def reader(path: Path):
    """The file's bytes for a download button, read when the button is clicked, not on every rerun."""
    return lambda: path.read_bytes()


def gated(allowed: bool, record: bool, run_id: str) -> dict:
    """A download button's gate arguments: disabled while a failing release gate is not confirmed, and a
    confirmed download recorded in the report like a confirmed build."""
    from ui.checksview import record_confirmation

    return {"disabled": not allowed, "on_click": record_confirmation if record else "ignore",
            "args": (run_id,) if record else None}


def gguf_card(run_id: str, weights: UsableWeights, method: str, allowed: bool = True, record: bool = False) -> None:
    """The GGUF export: what it is, and per weight type Build, progress and downloads (Build disabled while a
    failing release gate is not confirmed; ``record``: confirmed, so the export records it)."""
    with st.container(border=True):
        st.markdown(f"**{t('export.gguf.title')}**")
        st.caption(t("export.gguf.desc"))
        if not available(method, "gguf"):
            st.caption(t("export.not_for_method", method=t(f"method.{method}.name")))
            return
        for col, quant in zip(st.columns(len(GGUF_QUANTS)), GGUF_QUANTS):
            with col:
                gguf_quant(run_id, quant, weights, allowed, record)


def gguf_quant(run_id: str, quant: str, weights: UsableWeights, allowed: bool = True, record: bool = False) -> None:
    """One weight type: Build (or Rebuild), the job's progress, its failure with the log, the downloads."""
    st.markdown(t(f"export.gguf.{quant}"))
    state = gguf_state(run_id, quant, weights)
    if state["state"] == "running":
        building(run_id, quant, weights)
        return
    label = "export.rebuild" if state["state"] == "done" else "export.build"
    if st.button(t(label), key=f"build_gguf_{quant}", disabled=not allowed):
        try:
            start_gguf(run_id, quant, accept_failing_gate=record)
        except Exception as exc:  # noqa: BLE001 - the engine's message; the page keeps working
            show_error(exc)
            return
        st.rerun()
    if state["state"] == "failed":
        st.error(t("export.gguf.failed"), icon="💥")
        st.code(state["log_tail"] or "—", language=None)
    if state["files"]:
        gguf, modelfile = state["files"]
        if state["took_s"] is not None:
            st.caption(t("export.gguf.took", seconds=duration(state["took_s"])))
        st.download_button(t("export.download", size=gguf.stat().st_size / 1e6), data=reader(gguf),
                           file_name=gguf.name, mime="application/octet-stream", key=f"dl_gguf_{quant}",
                           type="primary", **gated(allowed, record, run_id))
        st.download_button(t("export.gguf.modelfile"), data=reader(modelfile), file_name="Modelfile",
                           mime="text/plain", key=f"dl_modelfile_{quant}", **gated(allowed, record, run_id))


@st.fragment(run_every=POLL_S)
@guarded
def building(run_id: str, quant: str, weights: UsableWeights) -> None:
    """While the job runs: the time it has taken so far; the whole page redraws once it ends."""
    state = gguf_state(run_id, quant, weights)
    if state["state"] != "running":
        st.rerun(scope="app")
    st.info(t("export.gguf.building", seconds=duration(state["elapsed_s"])), icon="⏳")
