"""Learn · the factory explainer (the line, each method as a machine, its maths, a rank slider, a merge demo)
and the method lab (the same data through all five methods, compared from the run folders)."""
import streamlit as st

from core.defaults import ACTIVE_STATES, DEFAULT_MODEL, METHODS
from core.workspace import list_ids, run_dir
from ui import labeler, load_project, t, update_project
from core import explain, lab
from ui.common import chart_layout, ensure_shell, guarded

ensure_shell()


st.title("🎓 " + t("learn.title"))
st.caption(t("learn.intro"))
tab_explain, tab_lab = st.tabs([t("learn.tab_explain"), t("learn.tab_lab")])

# ================================================================ the explainer
FORMULAS = {
    "lora": r"h = W x + \frac{\alpha}{r}\, B A x,\qquad W\in\mathbb{R}^{d\times k}\ \text{frozen},\ "
            r"B\in\mathbb{R}^{d\times r},\ A\in\mathbb{R}^{r\times k},\ B_0 = 0",
    "adapter": r"h' = h + f\!\left(h\, W_{\text{down}}\right) W_{\text{up}},\qquad "
               r"W_{\text{down}}\in\mathbb{R}^{d\times b},\ W_{\text{up}}\in\mathbb{R}^{b\times d},\ b \ll d",
    "prefix": r"\text{head} = \operatorname{softmax}\!\left(\frac{Q\,[P_K;\,K]^\top}{\sqrt{d_h}}\right)[P_V;\,V],"
              r"\qquad P_K, P_V\in\mathbb{R}^{p\times d}\ \text{per layer}",
    "full": r"W \leftarrow W - \eta\, \nabla_W \mathcal{L}\quad\text{for every } W",
    "freeze": r"W_\ell \leftarrow W_\ell - \eta\, \nabla_{W_\ell} \mathcal{L}\quad \text{only for the top } L "
              r"\text{ layers}",
}


def factory_line() -> str:
    """The line as a graphviz graph: each step a station, the five methods machines at 'production'."""
    stations = [("raw", "📦"), ("qc", "🔍"), ("production", "⚙️"), ("inspection", "🧪"), ("delivery", "🚚")]
    nodes = "".join(f'{k} [label="{icon} {t("learn.station." + k)}", shape=box, style="rounded,filled", '
                    f'fillcolor="#eef4ff"];' for k, icon in stations)
    edges = " -> ".join(k for k, _ in stations)
    machines = "".join(f'm_{m} [label="{t("method." + m + ".name")}", shape=component, style=filled, '
                       f'fillcolor="#fff4d6"]; m_{m} -> production [style=dashed, arrowhead=none];' for m in METHODS)
    return (f"digraph line {{ rankdir=LR; node [fontname=Helvetica]; {nodes} {edges}; "
            f"subgraph cluster_m {{ label=\"{t('learn.machines')}\"; style=dashed; {machines} }} }}")


def machine_diagram(method: str) -> str:
    """A small dataflow picture of one method inside one layer (frozen parts grey, trained parts orange)."""
    frozen, trained = 'style=filled, fillcolor="#e6e6e6"', 'style=filled, fillcolor="#ffd59e"'
    x, h = t("learn.diag.input"), t("learn.diag.output")
    if method == "lora":
        body = (f'x [label="{x}"]; W [label="W ({t("learn.diag.frozen")})", {frozen}]; A [label="A (r×k)", {trained}];'
                f' B [label="B (d×r)", {trained}]; plus [label="+", shape=circle]; h [label="{h}"];'
                ' x -> W -> plus; x -> A -> B -> plus [label="α/r"]; plus -> h;')
    elif method == "adapter":
        body = (f'x [label="{x}"]; L [label="{t("learn.diag.sublayer")} ({t("learn.diag.frozen")})", {frozen}];'
                f' D [label="W_down", {trained}]; F [label="f (GELU)"]; U [label="W_up", {trained}];'
                f' plus [label="+", shape=circle]; h [label="{h}"];'
                ' x -> L -> D -> F -> U -> plus; L -> plus; plus -> h;')
    elif method == "prefix":
        body = (f'P [label="{t("learn.diag.prefix")} P_K, P_V", {trained}]; x [label="{x}"];'
                f' K [label="K, V ({t("learn.diag.frozen")})", {frozen}]; Q [label="Q"]; att [label="Attention"];'
                f' h [label="{h}"]; x -> Q -> att; x -> K -> att; P -> att; att -> h;')
    elif method == "full":
        body = (f'x [label="{x}"]; W [label="{t("learn.diag.all_layers")}", {trained}]; h [label="{h}"];'
                ' x -> W -> h;')
    else:
        body = (f'x [label="{x}"]; low [label="{t("learn.diag.lower")} ({t("learn.diag.frozen")})", {frozen}];'
                f' top [label="{t("learn.diag.top")}", {trained}]; h [label="{h}"]; x -> low -> top -> h;')
    return f"digraph m {{ rankdir=LR; node [shape=box, fontname=Helvetica]; {body} }}"


def rank_slider() -> None:
    """LoRA's exact trainable parameter count on a chosen model as the rank changes."""
    import plotly.graph_objects as go

    st.subheader(t("learn.rank.title"))
    project = load_project()
    models = list(dict.fromkeys([project.get("base_model") or DEFAULT_MODEL, DEFAULT_MODEL,
                                 "tiny-llama"]))
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox(t("learn.rank.model"), models, key="learn_rank_model")
    targets = c2.radio(t("learn.rank.targets"), list(explain.LORA_TARGETS), key="learn_rank_targets",
                       format_func=labeler("learn.targets.{}"))
    r = c3.select_slider(t("learn.rank.r"), options=[1, 2, 4, 8, 16, 32, 64], value=8, key="learn_rank_r")
    with st.spinner(t("learn.rank.counting")):
        count = explain.lora_parameter_count(model, r, targets)
    m1, m2, m3 = st.columns(3)
    m1.metric(t("learn.rank.trainable"), f"{count['trainable']:,}")
    m2.metric(t("learn.rank.share"), f"{100 * count['share']:.3f}%")
    m3.metric(t("learn.rank.base"), f"{count['base']:,}")
    ranks = [1, 2, 4, 8, 16, 32, 64]
    fig = go.Figure(go.Scatter(x=ranks, y=[count["per_rank"] * k for k in ranks], mode="lines+markers"))
    fig.add_trace(go.Scatter(x=[r], y=[count["trainable"]], mode="markers", marker=dict(size=14), showlegend=False))
    fig.update_layout(xaxis_title="r", yaxis_title=t("learn.rank.trainable"), height=300, showlegend=False,
                      margin=dict(l=40, r=20, t=20, b=40))
    st.plotly_chart(fig, width="stretch")
    st.caption(t("learn.rank.caption", per_rank=f"{count['per_rank']:,}"))
    sizes = explain.method_sizes(model)
    bars = go.Figure(go.Bar(x=[t(f"method.{s['method']}.name") for s in sizes], y=[s["trainable"] for s in sizes],
                            text=[f"{100 * s['share']:.2f}%" for s in sizes], textposition="outside"))
    bars.update_yaxes(type="log", title=t("learn.rank.trainable"))
    chart_layout(bars, t("learn.sizes.title", model=model), 340)
    st.plotly_chart(bars, width="stretch", key="learn_sizes")


def merge_section() -> None:
    """Merge a LoRA into its base on a tiny model and show that the outputs agree."""
    st.subheader(t("learn.merge.title"))
    st.caption(t("learn.merge.explain"))
    if st.button(t("learn.merge.run"), key="learn_merge"):
        st.session_state["learn_merge_result"] = explain.merge_demo()
    result = st.session_state.get("learn_merge_result")
    if result:
        c1, c2, c3 = st.columns(3)
        c1.metric(t("learn.merge.diff"), f"{result['max_abs_diff']:.2e}")
        c2.metric(t("learn.merge.effect"), f"{result['lora_effect']:.3f}")
        c3.metric(t("learn.merge.params"), f"{result['params_after_merge']:,}")
        ok = result["max_abs_diff"] < 1e-4
        (st.success if ok else st.error)(t("learn.merge.ok" if ok else "learn.merge.bad",
                                           diff=f"{result['max_abs_diff']:.2e}"))


def explainer() -> None:
    """The factory line, the five machines with their maths, and the interactive pieces."""
    st.header(t("learn.line.title"))
    st.caption(t("learn.line.explain"))
    st.graphviz_chart(factory_line())
    st.header(t("learn.machines"))
    for method, tab in zip(METHODS, st.tabs([t(f"method.{m}.name") for m in METHODS])):
        with tab:
            c1, c2 = st.columns([3, 2])
            c1.markdown(t(f"method.{method}.explain"))
            c1.latex(FORMULAS[method])
            c1.caption(t(f"learn.math.{method}"))
            c2.graphviz_chart(machine_diagram(method))
    guarded(rank_slider)()
    guarded(merge_section)()


# ================================================================ the lab
COLUMN_KEYS = {"method": "learn.col.method", "trainable": "learn.col.trainable", "trainable_pct": "learn.col.pct",
               "peak_mb": "learn.col.peak", "wall_s": "learn.col.wall", "tokens_per_s": "learn.col.tps",
               "final_val_loss": "learn.col.val_loss", "metric": "learn.col.metric",
               "rouge_l": "learn.col.rouge", "label_scoring_accuracy": "learn.col.scored", "state": "learn.col.state", "run_id": "learn.col.run"}


def lab_form() -> None:
    """Choose a dataset, a budget and the methods; start the lab (five queued runs)."""
    project = load_project()
    datasets = list_ids("datasets")
    if not datasets:
        st.info(t("learn.lab.no_dataset"), icon="📦")
        return
    with st.form("learn_lab"):
        c1, c2, c3 = st.columns([2, 1, 2])
        active = project.get("active_dataset")
        dataset = c1.selectbox(t("learn.lab.dataset"), datasets,
                               index=datasets.index(active) if active in datasets else 0)
        minutes = c2.number_input(t("learn.lab.budget"), 1, 24 * 60, 10, help=t("learn.lab.budget_help"))
        methods = c3.multiselect(t("learn.lab.methods"), list(METHODS), default=list(METHODS),
                                 format_func=labeler("method.{}.name"))
        model = project.get("base_model") or DEFAULT_MODEL
        st.caption(t("learn.lab.model", model=model))
        go = st.form_submit_button(t("learn.lab.start"), type="primary")
    if go:
        if not methods:
            st.warning(t("learn.lab.pick_methods"))
            return
        base = {"system_prompt": project["system_prompt"]} if project.get("system_prompt") else None
        with st.spinner(t("learn.lab.starting")):
            lab_id = lab.launch_lab(dataset, model, 60.0 * minutes, methods=tuple(m for m in METHODS if m in methods),
                                    base_config=base)
        st.session_state["learn_lab_id"] = lab_id
        st.rerun()


def status_view(lab_id: str) -> None:
    """Each run's state and progress (refreshed every few seconds while the lab trains)."""
    status = lab.lab_status(lab_id)
    st.progress(status["done"] / max(1, status["total"]),
                text=t("learn.lab.progress", done=status["done"], total=status["total"],
                       state=t(f"learn.lab.state.{status['state']}")))
    for r in status["runs"]:
        step = f"{r['step'] or 0}/{r['total_steps'] or '?'}" if r["state"] in ACTIVE_STATES + ("completed",) else ""
        st.caption(f"**{t('method.' + r['method'] + '.name')}** · {t('state.' + (r['state'] or 'unknown'))} "
                   f"{step} · `{r['run_id']}`")
    if status["state"] == "running" and st.button(t("learn.lab.stop"), key="learn_lab_stop"):
        lab.stop_lab(lab_id)
        st.rerun()
    if status["state"] == "running" and st.session_state.get("learn_lab_seen_running") != lab_id:
        st.session_state["learn_lab_seen_running"] = lab_id
    elif status["state"] != "running" and st.session_state.get("learn_lab_seen_running") == lab_id:
        st.session_state.pop("learn_lab_seen_running")
        st.rerun()  # the lab just finished: redraw the whole page with the results


def results_view(lab_id: str) -> None:
    """The comparison table, charts, sample answers, evaluation and export."""
    import pandas as pd

    rows = lab.lab_results(lab_id)
    table = lab.lab_table(rows)
    shown = table.round({"trainable_pct": 3, "peak_mb": 0, "wall_s": 1, "tokens_per_s": 1, "final_val_loss": 4,
                         "metric": 4, "rouge_l": 4, "label_scoring_accuracy": 4})
    shown = shown.dropna(axis=1, how="all")  # e.g. no label scoring for free-text data
    shown = shown.rename(columns={c: t(k) for c, k in COLUMN_KEYS.items()})
    shown[t("learn.col.method")] = [t(f"method.{m}.name") for m in table["method"]]
    st.subheader(t("learn.lab.table"))
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption(t("learn.lab.metric_note", metric=table.attrs.get("metric_name", "metric")))
    missing = [r for r in rows if r["state"] == "completed" and not r["evaluated"]]
    if missing:
        c1, c2 = st.columns([1, 3])
        limit = c1.number_input(t("learn.lab.eval_limit"), 1, 100_000, 20, key="learn_eval_limit")
        c2.caption(t("learn.lab.eval_explain", n=len(missing)))
        if c2.button(t("learn.lab.evaluate"), key="learn_evaluate", type="primary"):
            bar = st.progress(0.0, text=t("learn.lab.evaluating"))
            lab.evaluate_lab(lab_id, limit=int(limit),
                             progress=lambda f, m: bar.progress(max(0.0, min(1.0, f)), text=m))
            st.rerun()
    figs = lab.lab_figures(rows)
    titles = {"trainable": "learn.col.trainable", "peak_mb": "learn.col.peak", "wall_s": "learn.col.wall",
              "tokens_per_s": "learn.col.tps", "metric": "learn.col.metric", "val_curve": "learn.lab.val_curve"}
    cols = st.columns(2)
    for i, (key, fig) in enumerate(figs.items()):
        chart_layout(fig, t(titles[key]), fig.layout.height or 340)
        cols[i % 2].plotly_chart(fig, width="stretch", key=f"learn_fig_{key}")
    st.subheader(t("learn.lab.samples"))
    for r in rows:
        with st.expander(f"{t('method.' + r['method'] + '.name')} · {r['run_id']}"):
            if r["samples"]:
                st.dataframe(pd.DataFrame(r["samples"]).rename(columns={
                    "prompt": t("learn.col.prompt"), "reference": t("learn.col.reference"),
                    "answer": t("learn.col.answer")}), hide_index=True, width="stretch")
            else:
                st.caption(t("learn.lab.no_samples"))
            if run_dir(r["run_id"]).exists() and st.button(t("learn.lab.open"), key=f"learn_open_{r['run_id']}"):
                update_project(active_run=r["run_id"])
                st.switch_page("pages/8_chat_export.py")
    if st.button(t("learn.lab.export"), key="learn_export"):
        st.session_state["learn_export_path"] = str(lab.export_html(lab_id))
    path = st.session_state.get("learn_export_path")
    if path and lab_id in path:
        with open(path, "rb") as fh:
            st.download_button(t("learn.lab.download"), fh.read(), file_name=f"{lab_id}.html", mime="text/html",
                               key="learn_download")


def lab_page() -> None:
    """Start a lab, follow it, compare its runs."""
    st.caption(t("learn.lab.explain"))
    guarded(lab_form)()
    labs = [x["lab_id"] for x in lab.list_labs()]
    if not labs:
        st.info(t("learn.lab.none_yet"), icon="🧪")
        return
    current = st.session_state.get("learn_lab_id")
    lab_id = st.selectbox(t("learn.lab.pick"), labs, index=labs.index(current) if current in labs else 0,
                          key="learn_lab_pick")
    st.session_state["learn_lab_id"] = lab_id
    running = lab.lab_status(lab_id)["state"] == "running"
    if running:
        st.fragment(run_every=3)(guarded(status_view))(lab_id)
    else:
        guarded(status_view)(lab_id)
        guarded(results_view)(lab_id)


with tab_explain:
    explainer()
with tab_lab:
    lab_page()
