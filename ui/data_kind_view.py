"""Views of the three kinds of data (chats, preference pairs, documents) for the Upload, Analyze and Prepare pages."""
from __future__ import annotations

import streamlit as st

from ui.i18n import t

PREVIEW_CHARS = 400


def message_line(msg: dict) -> str:
    """One chat message as a Markdown line: role, text, and the names of the tools it calls."""
    calls = [c.get("function", {}).get("name", "?") for c in msg.get("tool_calls") or []]
    extra = f" _({t('upload.tool_calls', names=', '.join(calls))})_" if calls else ""
    role = t("role." + msg["role"])
    return f"**{role}:** {msg['content'][:PREVIEW_CHARS]}{extra}"


def render_conversations(convs: list[dict], n: int = 3) -> None:
    """The first conversations, one bordered box each."""
    for conv in convs[:n]:
        with st.container(border=True):
            for msg in conv["messages"]:
                st.markdown(message_line(msg))


def render_pairs(pairs: list, n: int = 3) -> None:
    """The first preference pairs: the prompt, then chosen beside rejected."""
    for pair in pairs[:n]:
        with st.container(border=True):
            st.markdown(f"**{t('upload.pair_prompt')}**")
            for msg in pair.prompt:
                st.markdown(message_line(msg))
            left, right = st.columns(2)
            for col, key, side in ((left, "upload.pair_chosen", pair.chosen), (right, "upload.pair_rejected",
                                                                                 pair.rejected)):
                col.markdown(f"**{t(key)}**")
                for msg in side:
                    col.markdown(message_line(msg))


def render_kind_summary(report: dict) -> None:
    """The pair figures of a preference report, or the token and window counts of documents."""
    checks = report.get("checks") or {}
    pref, docs = checks.get("preference"), checks.get("documents")
    if pref:
        st.subheader(t("analyze.pref.title"))
        cols = st.columns(5)
        share = pref.get("chosen_longer_share")
        cols[0].metric(t("analyze.pref.identical"), pref.get("identical", 0))
        cols[1].metric(t("analyze.pref.empty"), pref.get("empty", 0))
        cols[2].metric(t("analyze.pref.longer"), "—" if share is None else f"{share:.0%}")
        cols[3].metric(t("analyze.pref.ratio"), pref.get("median_length_ratio") or "—")
        cols[4].metric(t("analyze.pref.duplicates"), pref.get("duplicate_prompts", 0))
    if docs:
        st.subheader(t("analyze.docs.title"))
        cols = st.columns(3)
        cols[0].metric(t("analyze.docs.documents"), f"{docs['documents']:,}")
        cols[1].metric(t("analyze.docs.tokens"), f"{docs['doc_tokens']:,}")
        cols[2].metric(t("analyze.docs.chunks"), f"{docs['chunks']:,}")
        st.caption(t("analyze.docs.explain", size=report.get("max_seq_len"), overlap=docs["chunk_overlap"]))
        if docs.get("documents_packed"):
            st.caption(t("analyze.docs.packed"))


def render_dataset_kind(meta: dict) -> None:
    """A prepared dataset's kind, and for documents the windows it makes."""
    kind = meta.get("kind") or "chat"
    st.caption(t("prepare.kind", kind=t(f"kind.{kind}")))
    docs = meta.get("documents")
    if kind == "document" and docs:
        st.caption(t("prepare.docs", documents=docs["documents"], tokens=docs["doc_tokens"], chunks=docs["chunks"],
                     size=meta.get("max_seq_len", "?"), overlap=docs["chunk_overlap"]))
