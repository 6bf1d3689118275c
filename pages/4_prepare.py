"""Step 4 · Prepare: clean, deduplicate, mask personal data, split; the result is saved as a dataset version."""
from pathlib import Path

import streamlit as st

from core.fileio import read_json
from core.workspace import dataset_dir, new_id, slugify
from ui import t, update_project
from core.data import prepare_dataset
from ui.common import ensure_shell, header, need, next_step
from ui.data_kind_view import render_dataset_kind
from ui.prepare_view import drift_text, ops_table, split_counts, split_explanation

ensure_shell()

project = header("prepare")
upload = project.get("upload")
if not need(bool(upload) and Path(upload["path"]).exists(), "prepare.need_upload", "upload"):
    st.stop()

st.caption(t("prepare.source", name=upload["display_name"]))
with st.form("prepare"):
    c1, c2, c3 = st.columns(3)
    clean = c1.checkbox(t("prepare.clean"), value=True, help=t("prepare.clean_help"))
    dedupe = c2.checkbox(t("prepare.dedupe"), value=True, help=t("prepare.dedupe_help"))
    mask_pii = c3.checkbox(t("prepare.mask_pii"), value=False, help=t("prepare.mask_pii_help"))
    c1, c2, c3 = st.columns(3)
    train_pct = c1.slider(t("prepare.train_pct"), 50, 98, 80, step=1)
    val_pct = c2.slider(t("prepare.val_pct"), 1, 25, 10, step=1)
    seed = c3.number_input(t("prepare.seed"), min_value=0, max_value=2**31 - 1, value=42)
    default_name = slugify(Path(upload["display_name"]).stem, "dataset")
    name = st.text_input(t("prepare.name"), value="", placeholder=default_name, help=t("prepare.name_help"))
    submitted = st.form_submit_button(t("prepare.run"), type="primary")

if submitted:
    test_pct = 100 - train_pct - val_pct
    if test_pct < 0:
        st.error(t("prepare.bad_split"), icon="⚠️")
    else:
        with st.status(t("prepare.running"), expanded=False) as status:
            dataset_id = prepare_dataset(upload["path"], format=upload.get("format"), mapping=upload.get("mapping"),
                                         dedupe=dedupe, clean=clean, mask_pii=mask_pii,
                                         split=(train_pct / 100, val_pct / 100, test_pct / 100), seed=int(seed),
                                         name=name.strip() or new_id(default_name), model=project["base_model"])
            status.update(label=t("prepare.done", id=dataset_id), state="complete")
        update_project(active_dataset=dataset_id)
        st.session_state["prepare_done"] = dataset_id
        st.rerun()  # the sidebar, drawn before this page, then lists and selects the new dataset

done = st.session_state.pop("prepare_done", None)
if done:
    st.success(t("prepare.done", id=done), icon="✅")

active = project.get("active_dataset")
if active and dataset_dir(active).exists():
    folder = dataset_dir(active)
    meta = read_json(folder / "meta.json", {}) or {}
    st.subheader(t("prepare.result", id=active))
    render_dataset_kind(meta)
    counts = split_counts(folder)
    cols = st.columns(4)
    cols[0].metric(t("prepare.rows_in"), f"{(meta.get('counts') or {}).get('records', meta.get('rows_in', '—'))}")
    for col, split in zip(cols[1:], ("train", "val", "test")):
        col.metric(t(f"prepare.split.{split}"), f"{counts.get(split, 0):,}")
    ops = meta.get("operations") or []
    if ops:
        st.markdown(t("prepare.ops"))
        st.dataframe(ops_table(ops), width="stretch", hide_index=True)
    explanation = split_explanation(meta)
    if explanation:
        st.caption(explanation)
    if meta.get("quality_score") is not None:
        st.caption(t("prepare.quality", score=meta["quality_score"]))
    for warning in meta.get("drift_warnings") or []:
        st.warning(drift_text(warning), icon="📉")
    with st.expander(t("prepare.meta")):
        st.json(meta, expanded=False)
    next_step("prepare")
