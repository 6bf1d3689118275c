"""Step 5 · Choose: the five methods explained, the recommendation and resource estimate, editable settings."""
import streamlit as st

from ui import labeler, t, update_project
from ui.baselineview import baselines_section
from ui.common import ensure_shell, header, need, next_step, show_error
from core.defaults import DEFAULT_BUDGET_MIN, METHODS, OBJECTIVES
from core.run_config import PRESETS, build_run_config, recommended_config
from ui.choose_view import (TRAIN_WIDGET, default_config, estimate, preset_values, recommend, render_estimate,
                            render_recommendation, widget_values, with_expected_speed)

PREFERENCE_OBJECTIVES = [o for o in OBJECTIVES if o != "sft"]

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
    band = rec.get("quality_band")  # from the calibration table (core/strategy/calibration.py)
    if band:
        key = "choose.quality_band" if band["low"] != band["high"] else "choose.quality_band_one"
        st.info(t(key, low=100 * band["low"], high=100 * band["high"], metric=band["metric"],
                  minutes=band["minutes"] if band.get("minutes") is not None else t("choose.minutes_unknown"),
                  rows=", ".join(band["rows"])), icon="📏")
    else:
        st.caption(t("choose.quality_band_none"))

    def use_recommendation() -> None:
        """Save the recommended settings and set the form's widgets to them (a callback: before they render)."""
        cfg = recommended_config(rec)
        update_project(method=rec["method"], run_config={**cfg, "x_preset": "custom"})
        st.session_state.update(widget_values(cfg))
        st.session_state["preset_pick"] = "custom"
        if cfg.get("objective") in PREFERENCE_OBJECTIVES:
            st.session_state["objective_pick"] = cfg["objective"]

    st.button(t("choose.use_recommendation"), key="use_rec", on_click=use_recommendation, type="primary")

baselines_section(project)  # before training: the bar tuning has to beat on the same test split

saved = project.get("run_config") or {}
base = default_config(rec, saved)
# The keyed widgets start from the saved (or recommended) settings; presets and the recommendation set them
# through callbacks, so no widget's default ever changes under it.
for key, value in widget_values(base).items():
    st.session_state.setdefault(key, value)


def apply_preset() -> None:
    """Set the training widgets to the chosen preset (method settings stay as chosen)."""
    if st.session_state["preset_pick"] in PRESETS:
        st.session_state.update(preset_values(st.session_state["preset_pick"]))


st.subheader(t("choose.settings_title"))
c1, c2 = st.columns(2)
method = c1.radio(t("choose.method"), METHODS, horizontal=True, format_func=labeler("method.{}.name"),
                  key="method_pick")
for key, value in widget_values({**base, "method": method}).items():
    st.session_state.setdefault(key, value)  # the sections of methods picked after the first render
preset_options = ["custom", *PRESETS]  # custom: the recommendation's (or your saved) settings as they are
st.session_state.setdefault("preset_pick", saved.get("x_preset") if saved.get("x_preset") in preset_options
                            else "custom")
preset = c2.radio(t("choose.preset"), preset_options, horizontal=True, format_func=labeler("preset.{}"),
                  key="preset_pick", help=t("choose.preset_help"), on_change=apply_preset)
if method == "prefix":
    st.session_state[TRAIN_WIDGET["packing"]] = False  # prefix tuning never packs
objective = None
if rec and rec.get("objective") not in (None, "sft"):  # preference pairs: DPO or ORPO, the recommended one first
    st.session_state.setdefault("objective_pick", saved.get("objective") if saved.get("objective") in
                                PREFERENCE_OBJECTIVES else rec["objective"])
    objective = c1.radio(t("choose.objective"), PREFERENCE_OBJECTIVES, horizontal=True, key="objective_pick",
                         format_func=labeler("objective.{}"), help=t("choose.objective_help"))

with st.form("settings"):
    params = {}
    cols = st.columns(4)
    if method == "lora":
        params["r"] = cols[0].number_input("r (rank)", 1, 256, help=t("hp.r"), key="hp_lora_r")
        params["alpha"] = cols[1].number_input("alpha", 1, 512, help=t("hp.alpha"), key="hp_lora_alpha")
        params["dropout"] = cols[2].number_input("dropout", 0.0, 0.5, step=0.05, key="hp_lora_dropout")
        options = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn", "c_proj",
                   "all-linear"]
        st.session_state["hp_lora_target_modules"] = [x for x in st.session_state["hp_lora_target_modules"]
                                                      if x in options] or ["q_proj", "v_proj"]
        chosen = cols[3].multiselect(t("hp.targets"), options, key="hp_lora_target_modules")
        params["target_modules"] = "all-linear" if "all-linear" in chosen else chosen
        params["use_rslora"] = cols[0].checkbox("rsLoRA", help=t("hp.rslora"), key="hp_lora_use_rslora")
        params["use_dora"] = cols[1].checkbox("DoRA", help=t("hp.dora"), key="hp_lora_use_dora")
    elif method == "adapter":
        params["bottleneck"] = cols[0].number_input(t("hp.bottleneck"), 1, 2048, key="hp_adapter_bottleneck")
        params["nonlinearity"] = cols[1].selectbox(t("hp.nonlinearity"), ["gelu", "relu", "silu", "tanh"],
                                                   key="hp_adapter_nonlinearity")
        params["placement"] = cols[2].multiselect(t("hp.placement"), ["attn", "mlp"], key="hp_adapter_placement")
    elif method == "prefix":
        params["num_virtual_tokens"] = cols[0].number_input(t("hp.virtual_tokens"), 1, 256,
                                                            key="hp_prefix_num_virtual_tokens")
        params["projection_dim"] = cols[1].number_input(t("hp.projection_dim"), 0, 4096, help=t("hp.projection_help"),
                                                        key="hp_prefix_projection_dim")
    elif method == "freeze":
        params["trainable_layers"] = cols[0].number_input(t("hp.trainable_layers"), 1, 64,
                                                          key="hp_freeze_trainable_layers")
    else:
        cols[0].caption(t("hp.full_note"))
    st.markdown(f"**{t('choose.training')}**")
    cols = st.columns(4)
    w = TRAIN_WIDGET
    train = {
        "epochs": cols[0].number_input(t("hp.epochs"), 1, 100, key=w["epochs"]),
        "max_steps": cols[1].number_input(t("hp.max_steps"), 0, 1_000_000, help=t("hp.max_steps_help"),
                                          key=w["max_steps"]),
        "batch_size": cols[2].number_input(t("hp.batch"), 1, 512, key=w["batch_size"]),
        "grad_accum": cols[3].number_input(t("hp.grad_accum"), 1, 256, key=w["grad_accum"]),
        "lr": cols[0].number_input(t("hp.lr"), 0.0, 1.0, format="%.6f", help=t("hp.lr_help"), key=w["lr"]),
        "scheduler": cols[1].selectbox(t("hp.scheduler"), ["cosine", "linear", "constant"], key=w["scheduler"]),
        "max_seq_len": cols[2].number_input(t("hp.max_seq_len"), 32, 8192, step=32, key=w["max_seq_len"]),
        "eval_every": cols[3].number_input(t("hp.eval_every"), 1, 100_000, key=w["eval_every"]),
        "save_every": cols[0].number_input(t("hp.save_every"), 1, 100_000, key=w["save_every"]),
        "seed": cols[1].number_input(t("hp.seed"), 0, 2**31 - 1, key=w["seed"]),
        "warmup_ratio": cols[2].number_input(t("hp.warmup"), 0.0, 0.5, step=0.01, key=w["warmup_ratio"]),
        "packing": cols[3].checkbox(t("hp.packing"), disabled=method == "prefix", help=t("hp.packing_help"),
                                    key=w["packing"]),
    }
    saved_ok = st.form_submit_button(t("choose.save"), type="primary")

train["max_steps"] = int(train["max_steps"]) or None
train["lr"] = float(train["lr"]) or None
config = {"method": method, method: params, "train": train, "x_preset": preset} if method != "full" else \
    {"method": method, "train": train, "x_preset": preset}
config = with_expected_speed(config, rec)
if objective:
    config["objective"] = objective
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
