"""The release gate and its checks on the Evaluate page (one tab each), and the gate's badge on the Export tab."""
from __future__ import annotations

import hashlib
from typing import Optional

import pandas as pd
import streamlit as st

from core.evaluation.causes import (ABSTAIN_ROWS, add_abstentions_and_retrain, compare_runs, mark_bad, marked_bad,
                                    nearest_for_run, revise_and_retrain)
from core.evaluation.curve import CURVE_FRACTIONS, launch_curve
from core.evaluation.gate import (GATE_CHECKS, GateThresholds, blocks_export, gate_of, gate_run, load_report,
                                  record_export_override)
from core.evaluation.runchecks import CHECKS
from core.fileio import read_json
from core.workspace import list_ids, run_dir
from ui.common import show_error
from ui.i18n import t

# Keys built from engine codes, listed so tests can check both languages have them.
CHECK_KEYS = {name: f"checks.name.{name}" for name in CHECKS}
STATUS_KEYS = {s: f"gate.status.{s}" for s in ("pass", "fail", "not_run", "incomplete")}
NOTE_KEYS = {code: f"checks.note.{code}" for code in (
    "causes.method_minhash", "baselines.beaten", "baselines.not_beaten", "baselines.reused",
    "baselines.few_shot_sampled", "curve.not_started",
    "curve.waiting", "curve.more_data_helps", "curve.plateau", "curve.unknown")}
DEFAULT_CHECKS = ["forgetting", "abstention", "leaks", "causes", "baselines"]  # the curve trains runs: asked apart
CURVE_BUDGET_S = 600


def check_label(name: str) -> str:
    """A check's name in the session's language."""
    return t(CHECK_KEYS[name]) if name in CHECK_KEYS else name


def status_label(status: str) -> str:
    """pass / fail / not run / incomplete in the session's language."""
    return t(STATUS_KEYS.get(status, "gate.status.not_run"))


def render_checks(report: dict, run_id: str) -> None:
    """The gate tab, then one tab per check (a hint where a check has not run)."""
    st.subheader(t("checks.title"))
    tabs = st.tabs([t("checks.tab.gate")] + [check_label(n) for n in CHECKS])
    with tabs[0]:
        gate_tab(report, run_id)
    checks = report.get("checks") or {}
    for tab, name in zip(tabs[1:], CHECKS):
        with tab:
            section = checks.get(name)
            if name == "curve":
                curve_tab(section, run_id)
            elif not section:
                st.caption(t("checks.not_run"))
            elif name == "causes":
                causes_tab(section, run_id)
            elif name == "abstention":
                figures(section)
                items(section)
                abstention_fix(section, run_id)
            else:
                figures(section)
                items(section)


def gate_table(gate: dict) -> pd.DataFrame:
    """One row per gated check: result, value, threshold."""
    return pd.DataFrame([{t("gate.col.check"): check_label(n), t("gate.col.result"): status_label(v["status"]),
                          t("gate.col.value"): "" if v.get("value") is None else str(v["value"]),
                          t("gate.col.threshold"): "" if v.get("limit") is None else str(v["limit"])}
                         for n, v in gate["checks"].items()])


def gate_verdict(gate: dict) -> None:
    """The overall verdict as a coloured banner."""
    text = t("gate.overall", status=status_label(gate["status"]))
    if gate["passed"]:
        st.success(text, icon="✅")
    elif blocks_export(gate):
        st.error(text, icon="⛔")
    else:
        st.warning(text, icon="⚠️")


def gate_tab(report: dict, run_id: str) -> None:
    """Thresholds (with their defaults) and the pass/fail table."""
    gate = gate_of(run_id) or {}
    th = GateThresholds.from_dict(gate.get("thresholds"))
    with st.form("gate_thresholds"):
        c1, c2, c3, c4 = st.columns(4)
        max_forgotten = c1.number_input(t("gate.max_forgotten"), 0, 10_000, th.max_forgotten)
        min_abstention = c2.number_input(t("gate.min_abstention"), 0.0, 1.0, float(th.min_abstention), 0.05)
        max_leak = c3.number_input(t("gate.max_leak_rate"), 0.0, 1.0, float(th.max_leak_rate), 0.01)
        beat = c4.checkbox(t("gate.beat_baselines"), th.beat_baselines)
        apply = st.form_submit_button(t("gate.apply"))
    if apply:
        try:
            gate = gate_run(run_id, GateThresholds(int(max_forgotten), float(min_abstention), float(max_leak),
                                                   bool(beat)))
        except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
            show_error(exc)
    if gate:
        gate_verdict(gate)
        st.dataframe(gate_table(gate), width="stretch", hide_index=True)
        for entry in gate.get("overrides") or []:
            st.caption(t("gate.override", who=entry.get("who"), when=entry.get("when")))


def figures(section: dict) -> None:
    """The check's base and tuned figures, its notes and its cost."""
    rows = [{"": t(f"evaluate.col.{who}"), **{k: v for k, v in (section.get(who) or {}).items()
                                               if not isinstance(v, (dict, list))}} for who in ("base", "tuned")]
    rows = [r for r in rows if len(r) > 1]
    if rows:
        st.dataframe(pd.DataFrame(rows).astype(str), width="stretch", hide_index=True)
    for code in section.get("notes") or []:
        st.markdown(t(NOTE_KEYS.get(code, code)))  # checks 1-3 carry their strings' keys as codes
    st.caption(t("checks.cost", seconds=section.get("seconds") or 0, n=section.get("generated") or 0))


def items(section: dict) -> None:
    """The check's items as a table."""
    rows = [{k: v if not isinstance(v, (dict, list)) else str(v) for k, v in i.items()}
            for i in section.get("items") or []]
    if rows:
        st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)


def causes_tab(section: dict, run_id: str) -> None:
    """One expander per failing answer: its nearest training rows (MinHash) and "drop these rows and retrain"."""
    figures(section)
    for n, item in enumerate(section.get("items") or []):
        with st.expander(f"❌ {item.get('prompt', '')[:90]}"):
            st.markdown(f"**{t('causes.answer')}** {item.get('answer', '')}")
            st.markdown(f"**{t('evaluate.col.reference')}** {item.get('reference', '')}")
            rows_editor(run_id, item.get("nearest") or [], f"causes_{n}",
                        section.get("tuned", {}).get("method", "MinHash"))
    compare_panel(run_id)


def rows_editor(run_id: str, near: list[dict], key: str, method: str = "MinHash") -> Optional[tuple[str, str]]:
    """A bad answer's nearest training rows, editable, the rows to drop, and "drop/edit and retrain" (a new
    dataset version, then the run's settings on it); (dataset, new run) on the run it was started."""
    st.caption(t("causes.method", method=method))
    edited = st.data_editor(pd.DataFrame([{"row": r["index"], "similarity": r["similarity"],
                                           "question": r["question"], "answer": r["answer"]} for r in near]),
                            column_config=_near_columns(), disabled=["row", "similarity"],
                            hide_index=True, width="stretch", key=f"{key}_edit")
    chosen = st.multiselect(t("causes.pick"), [r["index"] for r in near], key=f"{key}_pick")
    edits = _edits(near, edited)
    if not st.button(t("causes.drop_retrain"), key=f"{key}_drop", disabled=not (chosen or edits)):
        return None
    try:
        dataset, new_run = revise_and_retrain(run_id, chosen, edits)
    except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
        show_error(exc)
        return None
    st.success(t("causes.retraining", dataset=dataset, run=new_run), icon="🔁")
    return dataset, new_run


def abstention_fix(section: dict, run_id: str) -> None:
    """The check's fix, where it is offered: "I can't help with that" rows added to the data, then a retrain."""
    if "check.abstention.fix" not in (section.get("notes") or []):
        return
    if st.button(t("checks.abstention.add_retrain", n=ABSTAIN_ROWS), key="abstention_fix"):
        try:
            dataset, new_run = add_abstentions_and_retrain(run_id)
            st.success(t("causes.retraining", dataset=dataset, run=new_run), icon="🔁")
        except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
            show_error(exc)


def _near_columns() -> dict:
    return {"row": st.column_config.NumberColumn(t("causes.col.row")),
            "similarity": st.column_config.NumberColumn(t("causes.col.similarity"), format="%.2f"),
            "question": st.column_config.TextColumn(t("causes.col.question")),
            "answer": st.column_config.TextColumn(t("causes.col.answer"))}


def _edits(near: list[dict], edited) -> dict[int, tuple[str, str]]:
    """Rows whose question or answer the user changed in the editor: index -> (question, answer)."""
    out = {}
    for r, (_, row) in zip(near, edited.iterrows()):
        if (row["question"], row["answer"]) != (r["question"], r["answer"]):
            out[int(r["index"])] = (str(row["question"]), str(row["answer"]))
    return out


def bad_answer_panel(run_id: str, question: str, answer: str, key: str) -> None:
    """The training rows nearest to a chat answer the user marked as bad (MinHash), with the causes tab's
    edit/drop and retrain; says which run was started and where its changed answers will show."""
    try:
        near = _nearest(str(run_dir(run_id)), run_id, question, answer)
    except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
        show_error(exc)
        return
    started = rows_editor(run_id, near, key)
    if started:
        st.info(t("chat.bad.started", run=started[1]), icon="📊")


@st.cache_data(show_spinner=False, max_entries=64)
def _nearest(folder: str, run_id: str, question: str, answer: str) -> list[dict]:
    """nearest_for_run, once per run folder (the workspace's), question and answer: the MinHash of every training
    row is not redone on each rerun."""
    return nearest_for_run(run_id, question, answer)


def answer_key(prefix: str, question: str, answer: str) -> str:
    """A widget key that follows the answer, not its place on screen (edits never move to another answer)."""
    digest = hashlib.sha1((question + "\0" + answer).encode("utf-8")).hexdigest()[:12]
    return f"{prefix}_{digest}"


def mark_bad_control(where, run_id: str, question: str, answer: str, step: Optional[int], key: str) -> None:
    """Under a tuned chat answer: "👎 mark as bad", or, once marked, its nearest training rows in an expander."""
    key = answer_key(key, question, answer)
    marked = {(r["question"], r["answer"]) for r in marked_bad(run_id)}
    if (question, answer) not in marked:
        if not where.button(t("chat.bad.mark"), key=key, help=t("chat.bad.help")):
            return
        try:
            mark_bad(run_id, question, answer, step)
        except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
            show_error(exc)
            return
    with where.expander(t("chat.bad.marked"), expanded=True):
        bad_answer_panel(run_id, question, answer, key)


def earlier_bad_answers(run_id: str, shown: set[tuple[str, str]]) -> None:
    """The answers marked as bad in earlier sessions (chat_feedback.jsonl), not in the conversation on screen."""
    earlier = [r for r in marked_bad(run_id) if (r["question"], r["answer"]) not in shown]
    if earlier:
        st.caption(t("chat.bad.earlier", n=len(earlier)))
    for record in earlier:
        with st.expander(f"👎 {record['question'][:90]}"):
            st.markdown(f"**{t('causes.answer')}** {record['answer']}")
            bad_answer_panel(run_id, record["question"], record["answer"],
                             answer_key("bad_earlier", record["question"], record["answer"]))


def compare_panel(run_id: str) -> None:
    """Which test answers changed between this run and another evaluated run."""
    others = [r for r in list_ids("runs") if r != run_id and load_report(r) is not None]
    if not others:
        return
    parent = (read_json(run_dir(run_id) / "retrained_from.json", {}) or {}).get("run")
    first = others.index(parent) if parent in others else 0  # a retrained run is compared with its parent first
    other = st.selectbox(t("causes.compare_with"), others, index=first, key="causes_compare")
    changed = compare_runs(load_report(run_id) or {}, load_report(other) or {})
    st.caption(t("causes.changed", n=len(changed)))
    if changed:
        st.dataframe(pd.DataFrame(changed), width="stretch", hide_index=True)


def curve_tab(section: Optional[dict], run_id: str) -> None:
    """The learning curve's points and verdict, or the form that starts it."""
    if section:
        figures(section)
        items(section)
    with st.form("curve"):
        budget = st.number_input(t("curve.budget"), 30, 86_400, CURVE_BUDGET_S, 30,
                                 help=t("curve.help", fractions=", ".join(f"{f:.0%}" for f in CURVE_FRACTIONS)))
        start = st.form_submit_button(t("curve.start"))
    if start:
        try:
            curve = launch_curve(run_id, float(budget))
            st.success(t("curve.started", runs=", ".join(p["run_id"] for p in curve["points"])), icon="📈")
        except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
            show_error(exc)


def export_gate(run_id: str) -> tuple[bool, bool]:
    """The gate's badge on the Export tab: (export allowed, confirmation to record). A failing gate asks first."""
    gate = gate_of(run_id)
    if gate is None:
        st.caption(t("gate.export.not_evaluated"))
        return True, False
    gate_verdict(gate)
    st.dataframe(gate_table(gate), width="stretch", hide_index=True)  # pass or fail per check, always
    if not blocks_export(gate):
        return True, False
    confirmed = st.checkbox(t("gate.export.confirm"), key=f"gate_confirm_{run_id}")
    return confirmed, confirmed


def record_confirmation(run_id: str) -> None:
    """Write the confirmed export of a failing assistant into its report."""
    record_export_override(run_id, who="app")


__all__ = ["render_checks", "export_gate", "record_confirmation", "bad_answer_panel", "mark_bad_control",
           "earlier_bad_answers", "DEFAULT_CHECKS", "GATE_CHECKS", "check_label"]
