"""Step 5 · Choose: the five methods explained, the recommendation and resource estimate, editable settings."""
import streamlit as st

from ui import labeler, t, update_project
from ui.common import ensure_shell, header, need, next_step, show_error
from core.defaults import METHODS
from ui.choose_view import (DEFAULT_BUDGET_MIN, PRESETS, default_config, estimate, recommend,
                            recommended_config, render_estimate, render_recommendation)
from ui.runview import build_run_config

ensure_shell()

project = header("choose")
if not need(bool(project.get("active_dataset")), "choose.need_dataset", "prepare"):
    st.stop()

st.subheader(t("choose.methods_title"))
tabs = st.tabs([t(f"method.{m}.name") for m in METHODS])
for tab, method in zip(tabs, METHODS):
    with tab:
        st.markdown(f"**{t(f'method.{method}.machine')}** — {t(f'method.{method}.explain')}")
        st.caption(t(f"method.{method}.when"))

st.subheader(t("choose.recommend_title"))
budget_min = st.number_input(t("choose.budget"), 1, 24 * 60, int(project.get("time_budget_min") or DEFAULT_BUDGET_MIN),
                             step=1, help=t("choose.budget_help"), key="budget_min")
if budget_min != project.get("time_budget_min"):
    project = update_project(time_budget_min=int(budget_min))
rec = None
with st.spinner(t("choose.recommending")):
    try:
        rec = recommend(project)
    except Exception as exc:  # noqa: BLE001 - the rest of the page still works without a recommendation
        show_error(exc)
if rec is None:
    st.info(t("choose.engine_strategy"), icon="🚧")
else:
    render_recommendation(rec)

    def use_recommendation() -> None:
        """Save the recommended settings and let the form show them (a callback: before widgets are drawn)."""
        update_project(method=rec["method"], run_config={**recommended_config(rec), "x_preset": "custom"})
        st.session_state["method_pick"] = rec["method"]
        st.session_state.pop("preset_pick", None)

    st.button(t("choose.use_recommendation"), key="use_rec", on_click=use_recommendation, type="primary")

saved = project.get("run_config") or {}
base = default_config(rec, saved)
st.subheader(t("choose.settings_title"))
c1, c2 = st.columns(2)
method = c1.radio(t("choose.method"), METHODS, index=METHODS.index(base["method"]), horizontal=True,
                  format_func=labeler("method.{}.name"), key="method_pick")
preset_options = ["custom", *PRESETS]  # custom: the recommendation's (or your saved) settings as they are
current_preset = saved.get("x_preset") or "custom"
preset = c2.radio(t("choose.preset"), preset_options, horizontal=True, format_func=labeler("preset.{}"),
                  index=preset_options.index(current_preset) if current_preset in preset_options else 0,
                  key="preset_pick", help=t("choose.preset_help"))
train_defaults = {**base["train"], **(PRESETS[preset] if preset in PRESETS and preset != saved.get("x_preset") else {})}

with st.form("settings"):
    params = {}
    cols = st.columns(4)
    if method == "lora":
        lora = base.get("lora", {})
        params["r"] = cols[0].number_input("r (rank)", 1, 256, int(lora.get("r", 8)), help=t("hp.r"))
        params["alpha"] = cols[1].number_input("alpha", 1, 512, int(lora.get("alpha", 16)), help=t("hp.alpha"))
        params["dropout"] = cols[2].number_input("dropout", 0.0, 0.5, float(lora.get("dropout", 0.05)), step=0.05)
        targets = lora.get("target_modules", ["q_proj", "v_proj"])
        options = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn", "c_proj",
                   "all-linear"]
        chosen = cols[3].multiselect(t("hp.targets"), options, default=[x for x in (
            [targets] if isinstance(targets, str) else targets) if x in options] or ["q_proj", "v_proj"])
        params["target_modules"] = "all-linear" if "all-linear" in chosen else chosen
        params["use_rslora"] = cols[0].checkbox("rsLoRA", bool(lora.get("use_rslora", False)), help=t("hp.rslora"))
        params["use_dora"] = cols[1].checkbox("DoRA", bool(lora.get("use_dora", False)), help=t("hp.dora"))
    elif method == "adapter":
        ad = base.get("adapter", {})
        params["bottleneck"] = cols[0].number_input(t("hp.bottleneck"), 1, 2048, int(ad.get("bottleneck", 64)))
        params["nonlinearity"] = cols[1].selectbox(t("hp.nonlinearity"), ["gelu", "relu", "silu", "tanh"],
                                                   index=["gelu", "relu", "silu", "tanh"].index(
                                                       ad.get("nonlinearity", "gelu")))
        params["placement"] = cols[2].multiselect(t("hp.placement"), ["attn", "mlp"],
                                                  default=ad.get("placement", ["attn", "mlp"]))
    elif method == "prefix":
        pf = base.get("prefix", {})
        params["num_virtual_tokens"] = cols[0].number_input(t("hp.virtual_tokens"), 1, 256,
                                                            int(pf.get("num_virtual_tokens", 20)))
        params["projection_dim"] = cols[1].number_input(t("hp.projection_dim"), 0, 4096,
                                                        int(pf.get("projection_dim", 512)), help=t("hp.projection_help"))
    elif method == "freeze":
        params["trainable_layers"] = cols[0].number_input(t("hp.trainable_layers"), 1, 64,
                                                          int(base.get("freeze", {}).get("trainable_layers", 2)))
    else:
        cols[0].caption(t("hp.full_note"))
    st.markdown(f"**{t('choose.training')}**")
    cols = st.columns(4)
    tr = train_defaults
    train = {
        "epochs": cols[0].number_input(t("hp.epochs"), 1, 100, int(tr.get("epochs", 3))),
        "max_steps": cols[1].number_input(t("hp.max_steps"), 0, 1_000_000, int(tr.get("max_steps") or 0),
                                          help=t("hp.max_steps_help")),
        "batch_size": cols[2].number_input(t("hp.batch"), 1, 512, int(tr.get("batch_size", 8))),
        "grad_accum": cols[3].number_input(t("hp.grad_accum"), 1, 256, int(tr.get("grad_accum", 1))),
        "lr": cols[0].number_input(t("hp.lr"), 0.0, 1.0, float(tr.get("lr") or 0.0), format="%.6f",
                                   help=t("hp.lr_help")),
        "scheduler": cols[1].selectbox(t("hp.scheduler"), ["cosine", "linear", "constant"],
                                       index=["cosine", "linear", "constant"].index(tr.get("scheduler", "cosine"))),
        "max_seq_len": cols[2].number_input(t("hp.max_seq_len"), 32, 8192, int(tr.get("max_seq_len", 512)), step=32),
        "eval_every": cols[3].number_input(t("hp.eval_every"), 1, 100_000, int(tr.get("eval_every", 50))),
        "save_every": cols[0].number_input(t("hp.save_every"), 1, 100_000, int(tr.get("save_every", 100))),
        "seed": cols[1].number_input(t("hp.seed"), 0, 2**31 - 1, int(tr.get("seed", 42))),
        "warmup_ratio": cols[2].number_input(t("hp.warmup"), 0.0, 0.5, float(tr.get("warmup_ratio", 0.05)), step=0.01),
        "packing": cols[3].checkbox(t("hp.packing"), bool(tr.get("packing", False)) and method != "prefix",
                                    disabled=method == "prefix", help=t("hp.packing_help")),
    }
    saved_ok = st.form_submit_button(t("choose.save"), type="primary")

train["max_steps"] = int(train["max_steps"]) or None
train["lr"] = float(train["lr"]) or None
config = {"method": method, method: params, "train": train, "x_preset": preset} if method != "full" else \
    {"method": method, "train": train, "x_preset": preset}
if saved_ok:
    project = update_project(method=method, run_config=config)
    st.success(t("choose.saved"), icon="💾")

st.subheader(t("choose.estimate_title"))
with st.spinner(t("choose.estimating")):
    try:
        est = estimate(build_run_config({**project, "run_config": config}))
    except Exception as exc:  # noqa: BLE001
        est = None
        show_error(exc)
if est is None:
    st.info(t("choose.engine_estimate"), icon="🚧")
else:
    render_estimate(est)
if project.get("run_config"):
    next_step("choose")
