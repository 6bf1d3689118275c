"""A merged Llama-architecture model as one GGUF file (llama.cpp / Ollama), plus an Ollama ``Modelfile``.

The layout follows llama.cpp's ``convert_hf_to_gguf.py`` for ``LlamaModel``: tensor names come from the ``gguf``
package's ``TensorNameMap``; q/k projection rows are permuted from HF's rotate-half order into llama.cpp's
interleaved RoPE order (transformers' GGUF loader undoes exactly this); a tied ``lm_head`` is not written (the
loader re-ties it when ``output.weight`` is absent); 1-D tensors (norms) stay float32. The tokenizer is written
as ``tokenizer.ggml.model = gpt2`` (byte-level BPE: tokens, merges, token types, special ids), with the chat
template and the run's system prompt in the metadata.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.errors import UserError

QUANTS = ("f16", "q8_0")
META_PREFIX = "assistant_factory"  # our own metadata keys: assistant_factory.system_prompt, .run_id, ...
CHATML_STOPS = ("<|im_end|>", "<|im_start|>")


def _gguf():
    """The ``gguf`` package, or a UserError saying how to install it."""
    try:
        import gguf
    except ImportError as exc:
        raise UserError("GGUF export needs the 'gguf' package: pip install gguf") from exc
    return gguf


def check_llama(model) -> None:
    """UserError unless ``model`` is a plain Llama-architecture causal LM (what this writer lays out)."""
    config = model.config
    if getattr(config, "model_type", None) != "llama":
        raise UserError(f"GGUF export supports Llama-architecture models (SmolLM2, tiny-llama); this run's base "
                        f"model is '{getattr(config, 'model_type', '?')}'. Use --format merged instead.")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise UserError(f"GGUF export does not handle RoPE scaling '{rope.get('rope_type')}' yet; "
                        "use --format merged instead.")


def _permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp interleaved rows (``LlamaModel.permute`` in convert_hf_to_gguf.py)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama_tensors(model) -> Iterator[tuple[str, np.ndarray]]:
    """``(gguf name, float32 array)`` for every weight of a merged Llama model, in llama.cpp's layout."""
    gguf = _gguf()
    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # tied: llama.cpp and transformers both reuse token_embd
        if "rotary_emb" in hf_name:
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"GGUF export cannot place the weight '{hf_name}' (not a plain Llama layer); "
                            "use --format merged instead.")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, config.num_attention_heads, config.num_key_value_heads)
        yield name, data


def _encode(data: np.ndarray, quant: str):
    """(array to write, its ggml type): norms f32; 2-D weights f16, or q8_0 where rows split into 32-blocks."""
    gguf = _gguf()
    if data.ndim == 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and data.shape[-1] % 32 == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data.astype(np.float32), qtype), qtype
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def _add_model_config(writer, config, quant: str) -> None:
    """The ``llama.*`` hyper-parameters llama.cpp reads (and transformers maps back to a LlamaConfig)."""
    gguf = _gguf()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // config.num_attention_heads:  # llama.cpp then needs them spelled out
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    ftype = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(int(ftype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _pre_tokenizer(tok, model_name: str) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` name; UserError for tokenizers that are not byte-level BPE."""
    spec = json.loads(tok.backend_tokenizer.to_str())
    if spec.get("model", {}).get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise UserError("GGUF export writes byte-level BPE tokenizers (GPT-2 style, as SmolLM2 uses); this model's "
                        "tokenizer is not one. Use --format merged instead.")
    if "smollm" in model_name.lower():
        return "smollm"  # SmolLM2: digits split one by one, then GPT-2's regex
    return "gpt-2"


def tokenizer_fields(tok, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """``(tokens, token types, merges)`` as convert_hf_to_gguf.py writes a GPT-2 style vocabulary."""
    gguf = _gguf()
    by_id = {i: t for t, i in tok.get_vocab().items()}
    added = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # the embedding matrix is larger than the vocabulary: padding rows
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif i in added:
            tokens.append(by_id[i])
            types.append(int(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(by_id[i])
            types.append(int(gguf.TokenType.NORMAL))
    merges = json.loads(tok.backend_tokenizer.to_str())["model"].get("merges") or []
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    return tokens, types, merges


def _writer(path: Path):
    """A GGUFWriter that can also write an empty string array.

    llama.cpp refuses a gpt2 vocabulary without ``tokenizer.ggml.merges``, but a byte-level vocabulary may have no
    merges at all (our tiny test tokenizer), and the stock writer drops empty arrays on ``add_array``."""
    gguf = _gguf()

    class Writer(gguf.GGUFWriter):
        def _pack_val(self, val, vtype, add_vtype, sub_type=None):  # private, but the one place arrays are packed
            if vtype == gguf.GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
                head = self._pack("I", vtype) if add_vtype else b""
                return head + self._pack("I", sub_type) + self._pack("Q", 0)
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    return Writer(path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])


def _adds_bos(tok) -> bool:
    """Whether encoding plain text prepends BOS (SmolLM2's does not)."""
    ids = tok("a")["input_ids"]
    return tok.bos_token_id is not None and len(ids) > 1 and ids[0] == tok.bos_token_id


def _add_tokenizer(writer, tok, vocab_size: int, model_name: str) -> None:
    """The ``tokenizer.*`` keys llama.cpp expects for ``tokenizer.ggml.model = gpt2``."""
    gguf = _gguf()
    tokens, types, merges = tokenizer_fields(tok, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(tok, model_name))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if merges:
        writer.add_token_merges(merges)
    else:
        writer.add_key_value(gguf.Keys.Tokenizer.MERGES, [], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)
    for token_id, add in ((tok.bos_token_id, writer.add_bos_token_id), (tok.eos_token_id, writer.add_eos_token_id),
                          (tok.unk_token_id, writer.add_unk_token_id), (tok.pad_token_id, writer.add_pad_token_id)):
        if token_id is not None:
            add(int(token_id))
    writer.add_add_bos_token(_adds_bos(tok))
    writer.add_add_space_prefix(False)
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template)


def _add_run_metadata(writer, run: dict) -> None:
    """Name, description and our own keys: the run id, method, base model and system prompt."""
    system = run.get("system_prompt") or ""
    writer.add_name(f"{run['run_id']} ({run['model']})")
    description = f"Assistant Factory run {run['run_id']}: {run['method']} fine-tune of {run['model']}."
    writer.add_description(description + (f" System prompt: {system}" if system else ""))
    for key in ("run_id", "method", "model"):
        writer.add_string(f"{META_PREFIX}.{key}", str(run[key]))
    writer.add_string(f"{META_PREFIX}.system_prompt", system)


def write_gguf(model, tok, path: Path, quant: str, run: dict) -> Path:
    """Write a merged Llama model, its tokenizer and the run's metadata as one GGUF file at ``path``."""
    if quant not in QUANTS:
        raise UserError(f"Unknown --quant {quant!r}; choose one of {', '.join(QUANTS)}.")
    check_llama(model)
    writer = _writer(path)
    _add_run_metadata(writer, run)
    _add_model_config(writer, model.config, quant)
    _add_tokenizer(writer, tok, model.config.vocab_size, str(run["model"]))
    for name, data in llama_tensors(model):
        array, qtype = _encode(data, quant)
        writer.add_tensor(name, array, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


CHATML_GO_TEMPLATE = (
    '{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
    '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
    '{{ end }}{{- end }}<|im_start|>assistant\n'
)


def modelfile_text(tok, gguf_name: str, system_prompt: str | None) -> str:
    """An Ollama Modelfile: FROM the GGUF, the chat format as a Go template, the system prompt, stop tokens."""
    lines = [f"FROM ./{gguf_name}", ""]
    template = tok.chat_template or ""
    if "<|im_start|>" in template:  # ChatML (SmolLM2, tiny-llama); .System is skipped in .Messages so it is not doubled
        lines.append(f'TEMPLATE """{CHATML_GO_TEMPLATE}"""')
        stops = list(CHATML_STOPS)
    else:  # another format: Ollama derives the template from tokenizer.chat_template inside the GGUF
        lines.append("# TEMPLATE: taken by Ollama from the GGUF's tokenizer.chat_template")
        stops = []
    if tok.eos_token and tok.eos_token not in stops:
        stops.append(tok.eos_token)
    if system_prompt:
        # a Modelfile string cannot hold its own closing quotes; ''' keeps the prompt's meaning
        lines.append('SYSTEM """' + system_prompt.replace('"""', "'''") + '"""')
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


def gguf_file_name(run_id: str, quant: str) -> str:
    """``<run id>-<quant>.gguf`` with any character outside [A-Za-z0-9._-] replaced by '_'."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in run_id)
    return f"{safe}-{quant}.gguf"


def export_gguf(model, tok, run: dict, folder: Path, quant: str = "f16") -> Path:
    """Write ``<run>-<quant>.gguf`` and a ``Modelfile`` into ``folder`` (created); returns the GGUF path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = write_gguf(model, tok, folder / gguf_file_name(run["run_id"], quant), quant, run)
    (folder / "Modelfile").write_text(modelfile_text(tok, path.name, run.get("system_prompt")), encoding="utf-8")
    return path
