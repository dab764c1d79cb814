"""transformers' names for the backbone's tensors, one table per architecture, read both ways.

Each table maps a suite backbone name to the transformers name of the same weights, ``{}`` standing
for the block's number. A module's name (``blocks.{}.attn.proj``) stands for its ``.weight`` and
``.bias``. A tuple names the query, key and value projections that suite keeps fused in
``attn.qkv``, one after the other along dim 0. ``TRANSPOSED``: transformers modules that store
their weight (in, out), as GPT-2's Conv1D does.

``to_hf`` (for `suite export --format hf`, core/hf_export.py) and ``from_hf`` (reading such an
export back, and for importers of transformers checkpoints) both read these tables, so export and
import cannot disagree. Names are those of the bare model (``BertModel``, ``GPT2Model``,
``LlamaModel``), without a prefix such as ``bert.`` or ``model.``.
"""
from __future__ import annotations

import re

import torch

BERT = {
    "pos_emb": "embeddings.position_embeddings.weight",
    "embed_norm": "embeddings.LayerNorm",
    "blocks.{}.attn.qkv": ("encoder.layer.{}.attention.self.query", "encoder.layer.{}.attention.self.key",
                           "encoder.layer.{}.attention.self.value"),
    "blocks.{}.attn.proj": "encoder.layer.{}.attention.output.dense",
    "blocks.{}.ln1": "encoder.layer.{}.attention.output.LayerNorm",
    "blocks.{}.mlp.fc": "encoder.layer.{}.intermediate.dense",
    "blocks.{}.mlp.proj": "encoder.layer.{}.output.dense",
    "blocks.{}.ln2": "encoder.layer.{}.output.LayerNorm",
}
GPT2 = {
    "pos_emb": "wpe.weight",
    "blocks.{}.ln1": "h.{}.ln_1",
    "blocks.{}.attn.qkv": "h.{}.attn.c_attn",
    "blocks.{}.attn.proj": "h.{}.attn.c_proj",
    "blocks.{}.ln2": "h.{}.ln_2",
    "blocks.{}.mlp.fc": "h.{}.mlp.c_fc",
    "blocks.{}.mlp.proj": "h.{}.mlp.c_proj",
    "ln_f": "ln_f",
}
LLAMA = {  # also Qwen2 and Mistral
    "blocks.{}.ln1": "layers.{}.input_layernorm",
    "blocks.{}.attn.qkv": ("layers.{}.self_attn.q_proj", "layers.{}.self_attn.k_proj", "layers.{}.self_attn.v_proj"),
    "blocks.{}.attn.proj": "layers.{}.self_attn.o_proj",
    "blocks.{}.ln2": "layers.{}.post_attention_layernorm",
    "blocks.{}.mlp.gate": "layers.{}.mlp.gate_proj",
    "blocks.{}.mlp.fc": "layers.{}.mlp.up_proj",
    "blocks.{}.mlp.proj": "layers.{}.mlp.down_proj",
    "ln_f": "norm",
}
NAMES = {"bert": BERT, "gpt2": GPT2, "llama": LLAMA, "qwen2": LLAMA}
TRANSPOSED = {"gpt2": ("h.{}.attn.c_attn", "h.{}.attn.c_proj", "h.{}.mlp.c_fc", "h.{}.mlp.c_proj")}

# Tensors outside the backbone: the token embedding table (a text task's adapter.embed.weight) and
# BERT's segment embeddings (suite has no segments: every token is segment 0).
WORDS = {"bert": "embeddings.word_embeddings.weight", "gpt2": "wte.weight", "llama": "embed_tokens.weight",
         "qwen2": "embed_tokens.weight"}
BERT_TOKEN_TYPES = "embeddings.token_type_embeddings.weight"

# transformers' activation names (hidden_act, activation_function) -> suite's; the first name of
# each suite activation is the one an export writes.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
               "relu": "relu", "silu": "silu", "swish": "silu"}
HF_ACTIVATIONS = {suite: hf for hf, suite in reversed(ACTIVATIONS.items())}

LAYER = re.compile(r"\.(\d+)\.")


def template(key: str) -> tuple[str, str | None]:
    """``blocks.3.attn.qkv.weight`` -> (``blocks.{}.attn.qkv.weight``, ``"3"``); no number: (key, None)."""
    m = LAYER.search(key)
    return (key, None) if m is None else (key[: m.start()] + ".{}." + key[m.end():], m.group(1))


def split_suffix(name: str) -> tuple[str, str]:
    """``a.b.weight`` -> (``a.b``, ``.weight``); a parameter's own name (``pos_emb``) -> (name, "")."""
    stem, dot, last = name.rpartition(".")
    return (stem, dot + last) if last in ("weight", "bias") and stem else (name, "")


def lookup(table: dict, name: str):
    """The table's entry for a name (a tensor's own, or its module's), and the suffix to append."""
    if name in table:
        return table[name], ""
    stem, suffix = split_suffix(name)
    return table.get(stem), suffix


def to_hf(family: str, state: dict[str, torch.Tensor], qkv_sizes: list[int]) -> dict[str, torch.Tensor]:
    """A suite backbone state dict -> transformers' names. ``qkv_sizes``: the rows of the query, key
    and value projections in ``attn.qkv`` (d_model, kv, kv). A tensor with no name raises KeyError."""
    table, transposed, out = NAMES[family], TRANSPOSED.get(family, ()), {}
    for key, tensor in state.items():
        name, layer = template(key)
        hf, suffix = lookup(table, name)
        if hf is None:
            raise KeyError(key)
        names, tensors = (hf, tensor.split(qkv_sizes, dim=0)) if isinstance(hf, tuple) else ((hf,), (tensor,))
        for n, t in zip(names, tensors):
            if n in transposed and suffix == ".weight":
                t = t.t()
            out[(n + suffix).format(layer)] = t.contiguous()
    return out


def from_hf(family: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' tensors (no prefix) -> a suite backbone state dict: the inverse of ``to_hf``.
    Tensors the table does not name (word embeddings, a pooler) are left out; a fused tensor with a
    missing piece raises KeyError."""
    inverse = {}  # transformers name -> (suite name, piece, pieces)
    for suite_name, hf in NAMES[family].items():
        for i, n in enumerate(hf if isinstance(hf, tuple) else (hf,)):
            inverse[n] = (suite_name, i, len(hf) if isinstance(hf, tuple) else 1)
    transposed, out, pieces = TRANSPOSED.get(family, ()), {}, {}
    for key, tensor in state.items():
        name, layer = template(key)
        entry, suffix = lookup(inverse, name)
        if entry is None:
            continue
        suite_name, i, n = entry
        stem = name[: len(name) - len(suffix)]
        if stem in transposed and suffix == ".weight":
            tensor = tensor.t()
        target = (suite_name + suffix).format(layer)
        if n == 1:
            out[target] = tensor.contiguous()
        else:
            pieces.setdefault(target, [None] * n)[i] = tensor
    for target, parts in pieces.items():
        if any(p is None for p in parts):
            raise KeyError(f"{target}: {sum(p is None for p in parts)} of its {len(parts)} pieces")
        out[target] = torch.cat(parts)
    return out
