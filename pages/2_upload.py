"""Step 2 · Upload: a file in any supported format, or a built-in sample; a preview; column mapping when unsure."""
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import UserError
from ui import labeler, t, update_project
from core.data.findings import render_note
from core.data.io import read_table
from core.data.kinds import load_rows
from ui.common import ensure_shell, header, next_step, show_error
from ui.data_kind_view import render_conversations, render_pairs
from core.data.uploads import FORMATS, SAMPLES, UPLOAD_TYPES, format_fields, save_sample, save_upload

ensure_shell()

project = header("upload")
limit_mb = st.get_option("server.maxUploadSize")

tab_sample, tab_file = st.tabs([t("upload.tab_sample"), t("upload.tab_file")])
with tab_sample:
    sample = st.radio(t("upload.sample_pick"), list(SAMPLES), format_func=labeler("sample.{}"),
                      key="sample_pick")
    st.caption(t(f"sample.{sample}.desc"))
    if st.button(t("upload.sample_use"), type="primary", key="sample_use"):
        path = save_sample(sample)
        project = update_project(upload={"path": str(path), "display_name": SAMPLES[sample], "format": None,
                                         "mapping": None}, analyzed=None)
        st.toast(t("upload.ready", name=SAMPLES[sample]), icon="✅")
with tab_file:
    st.caption(t("upload.limit", mb=limit_mb, types=", ".join(UPLOAD_TYPES)))
    file = st.file_uploader(t("upload.file"), type=list(UPLOAD_TYPES), key="uploader")
    if file is not None and st.session_state.get("uploaded_id") != file.file_id:
        try:
            path = save_upload(file.name, file.getvalue())
        except UserError as exc:
            show_error(exc)
        else:
            st.session_state["uploaded_id"] = file.file_id
            project = update_project(upload={"path": str(path), "display_name": file.name, "format": None,
                                             "mapping": None}, analyzed=None)
            st.toast(t("upload.ready", name=file.name), icon="✅")

upload = project.get("upload")
if not upload or not Path(upload["path"]).exists():
    st.info(t("upload.nothing"), icon="📄")
    st.stop()

st.divider()
st.subheader(t("upload.current", name=upload["display_name"]))
with st.spinner(t("upload.reading")):
    try:
        table = read_table(upload["path"])
    except UserError as exc:  # the engine says what is wrong and where
        show_error(exc)
        st.stop()
c1, c2, c3 = st.columns(3)
c1.metric(t("upload.rows"), f"{len(table.records):,}")
c2.metric(t("upload.columns"), len(table.columns))
c3.metric(t("upload.file_type"), table.file_type.lstrip(".").upper())
for item in table.notes:
    st.caption(f"ℹ️ {render_note(item, t)}")
st.dataframe(pd.DataFrame([{k: str(v)[:300] for k, v in r.items()} for r in table.records[:50]]),
             width="stretch", height=260)

st.subheader(t("upload.format_title"))
fmt_options = ["auto", *FORMATS]
mapping = upload.get("mapping") or None
st.session_state["fmt_select"] = upload.get("format") or "auto"  # the saved project wins over a stale widget


def _format_changed() -> None:
    chosen = st.session_state["fmt_select"]
    update_project(upload={**upload, "format": None if chosen == "auto" else chosen, "mapping": None}, analyzed=None)


st.selectbox(t("upload.format"), fmt_options, format_func=labeler("format.{}"), key="fmt_select",
             on_change=_format_changed)

problem = None
with st.spinner(t("upload.detecting")):
    try:
        rows, info = load_rows(upload["path"], format=upload.get("format"), mapping=mapping)
    except UserError as exc:
        problem, rows, info = exc, [], {}
if problem is None:
    kind = info["kind"]
    detected = "upload.detected_pairs" if kind == "preference" else "upload.detected"
    st.success(t(detected, format=t(f"format.{info.get('format', '?')}"), rows=len(rows)), icon="✅")
    st.caption(t("upload.kind", kind=t(f"kind.{kind}")) + (" " + t("upload.document_note") if kind == "document"
                                                            else ""))
    with st.expander(t("upload.as_conversations"), expanded=True):
        (render_pairs if kind == "preference" else render_conversations)(rows)
else:
    show_error(problem)

# Column mapping: offered when detection failed, and on request when it is unsure.
if problem is not None or st.toggle(t("upload.mapping_toggle"), key="map_toggle"):
    st.markdown(t("upload.mapping_intro"))
    map_fmt = upload.get("format") or st.selectbox(t("upload.mapping_format"), FORMATS[:4] + ("text", "preference"),
                                                   format_func=labeler("format.{}"), key="map_fmt")
    fields = format_fields(map_fmt)
    cols = ["—", *table.columns]
    for field_name in fields:
        prev = (mapping or {}).get(field_name)
        st.selectbox(t("upload.mapping_field", field=field_name), cols, key=f"map_{field_name}",
                     index=cols.index(prev) if prev in cols else 0)

    def _apply_mapping() -> None:
        new_map = {f: st.session_state[f"map_{f}"] for f in fields if st.session_state.get(f"map_{f}", "—") != "—"}
        update_project(upload={**upload, "format": map_fmt, "mapping": new_map}, analyzed=None)

    st.button(t("upload.mapping_apply"), key="map_apply", on_click=_apply_mapping)

if problem is None:
    next_step("upload")
