"""A backbone that is exactly a transformers architecture, written in that architecture's format.

`suite export RUN --format hf` (core/export.py) asks ``family`` which transformers model the run's
backbone is:

  bert   post-LN blocks, an embedding LayerNorm, no final norm, learned positions, biases (BERT, MiniLM)
  gpt2   pre-LN blocks, a final LayerNorm, learned positions, biases
  llama  pre-norm RMSNorm blocks, a gated MLP, rotary positions over the whole head, grouped-query
         attention allowed; biases on every projection or on none (Llama, Mistral)
  qwen2  the same with biases on the query, key and value projections only

and writes ``config.json`` as transformers writes that model's config and the backbone's tensors
under that model's names (core/hf_names.py) in ``model.safetensors``. Then
``transformers.AutoModel.from_pretrained(DIR)`` is the backbone: given ``inputs_embeds`` (the
adapter's output) and ``attention_mask`` (1 at real tokens, 0 at padding) it returns suite's hidden
states as ``last_hidden_state``. A text task's embedding table (``adapter.embed.weight``) is also the
model's word embeddings, so ``input_ids`` work too; any other adapter gets a one-row table of zeros.
``read_backbone`` turns the file back into suite's backbone state dict. transformers is not needed
for either.
"""
from __future__ import annotations

import torch

from . import hf_names
from .adapters import EmbeddingAdapter
from .backbone import BackboneConfig

# What each family's blocks are, in the terms of ``traits``; a tuple: any of these values.
FAMILIES = {
    "bert": {"norm": "post", "embed_norm": True, "final_norm": False, "positions": "learned", "norm_type": "layer",
             "mlp": "plain", "biases": "all", "grouped": False, "parallel_residual": False},
    "gpt2": {"norm": "pre", "embed_norm": False, "final_norm": True, "positions": "learned", "norm_type": "layer",
             "mlp": "plain", "biases": "all", "grouped": False, "parallel_residual": False},
    "llama": {"norm": "pre", "embed_norm": False, "final_norm": True, "positions": "rotary", "rotary_fraction": 1.0,
              "norm_type": "rms", "mlp": "gated", "biases": ("all", "none"), "parallel_residual": False},
    "qwen2": {"norm": "pre", "embed_norm": False, "final_norm": True, "positions": "rotary", "rotary_fraction": 1.0,
              "norm_type": "rms", "mlp": "gated", "biases": "qkv", "parallel_residual": False},
}
ARCHITECTURES = {"bert": "BertModel", "gpt2": "GPT2Model", "llama": "LlamaModel", "qwen2": "Qwen2Model"}
# The attention each family's model applies by itself; any other (prefix, or bidirectional in a
# decoder) is given as a 4-D attention_mask (B, 1, T, T), True where a query sees a key.
OWN_MASKS = {"bert": ("bidirectional", "causal"), "gpt2": ("causal",), "llama": ("causal",), "qwen2": ("causal",)}


def traits(backbone: dict) -> dict:
    """The settings that decide which transformers model a backbone is."""
    b = BackboneConfig.from_dict(backbone)
    qkv_bias = b.bias if b.qkv_bias is None else b.qkv_bias
    return {"norm": b.norm, "embed_norm": b.embed_norm, "final_norm": b.final_norm, "positions": b.positions,
            "rotary_fraction": b.rotary_fraction, "norm_type": b.norm_type, "mlp": b.mlp,
            "biases": {(True, True): "all", (False, False): "none", (False, True): "qkv"}.get((b.bias, qkv_bias), "all but qkv"),
            "grouped": (b.n_kv_heads or b.n_heads) != b.n_heads, "parallel_residual": b.parallel_residual}


def family(backbone: dict) -> tuple[str | None, str]:
    """(the transformers model_type the backbone is exactly, "") or (None, why none is)."""
    have = traits(backbone)
    misses = {name: [f"{k} {' or '.join(map(str, v)) if isinstance(v, tuple) else v} (here {have[k]})"
                     for k, v in need.items() if have[k] not in (v if isinstance(v, tuple) else (v,))]
              for name, need in FAMILIES.items()}
    for name, miss in misses.items():
        if not miss:
            return name, ""
    closest = min(misses, key=lambda n: len(misses[n]))
    return None, f"the closest, {closest}, needs {', '.join(misses[closest])}"


def plain_embedding(adapter) -> bool:
    """Whether the adapter is an embedding table and nothing else (its output: the table's rows)."""
    return type(adapter) is EmbeddingAdapter


def word_table(adapter, d_model: int) -> tuple[torch.Tensor, int | None]:
    """(the model's word embeddings, its padding id): the adapter's table where it is a plain one."""
    if plain_embedding(adapter):
        return adapter.embed.weight.detach().cpu(), adapter.embed.padding_idx
    return torch.zeros(1, d_model), None


def hf_state(fam: str, state: dict[str, torch.Tensor], backbone: dict, words: torch.Tensor) -> dict[str, torch.Tensor]:
    """The backbone's state dict (no prefix) and the word table under the transformers model's names."""
    b = BackboneConfig.from_dict(backbone)
    kv = (b.n_kv_heads or b.n_heads) * (b.d_model // b.n_heads)
    out = hf_names.to_hf(fam, {k: v.detach().cpu() for k, v in state.items()}, [b.d_model, kv, kv])
    out[hf_names.WORDS[fam]] = words.contiguous()
    if fam == "bert":  # suite has no segments: segment 0 adds nothing (its vectors are in the positions)
        out[hf_names.BERT_TOKEN_TYPES] = torch.zeros(2, b.d_model)
    return out


def read_backbone(fam: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``model.safetensors`` of an export (or a transformers model of ``fam``) -> suite's backbone state dict."""
    out = hf_names.from_hf(fam, state)
    if fam == "bert" and hf_names.BERT_TOKEN_TYPES in state:  # exact even where segment 0's vector is not zero
        out["pos_emb"] = out["pos_emb"] + state[hf_names.BERT_TOKEN_TYPES][0]
    return out


def hf_config(fam: str, backbone: dict, mask: str, vocab_size: int, pad: int | None) -> dict:
    """config.json of the transformers model ``fam`` with the backbone's architecture."""
    b = BackboneConfig.from_dict(backbone)
    act = hf_names.HF_ACTIVATIONS[b.activation]
    common = {"model_type": fam, "architectures": [ARCHITECTURES[fam]], "vocab_size": vocab_size,
              "pad_token_id": pad, "bos_token_id": None, "eos_token_id": None, "initializer_range": 0.02}
    if fam == "bert":
        return {**common, "hidden_size": b.d_model, "num_hidden_layers": b.n_layers, "num_attention_heads": b.n_heads,
                "intermediate_size": b.d_ff, "hidden_act": act, "max_position_embeddings": b.max_len,
                "type_vocab_size": 2, "layer_norm_eps": b.ln_eps, "position_embedding_type": "absolute",
                "hidden_dropout_prob": b.dropout, "attention_probs_dropout_prob": b.dropout,
                "is_decoder": mask == "causal"}
    if fam == "gpt2":
        return {**common, "n_embd": b.d_model, "n_layer": b.n_layers, "n_head": b.n_heads, "n_inner": b.d_ff,
                "n_positions": b.max_len, "activation_function": act, "layer_norm_epsilon": b.ln_eps,
                "resid_pdrop": b.dropout, "embd_pdrop": b.dropout, "attn_pdrop": b.dropout,
                "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False}
    scaling = dict(b.rope_scaling) if b.rope_scaling else None
    rope = {"rope_type": "default", **(scaling or {}), "rope_theta": b.rope_base}
    rope["rope_type"] = rope.pop("type", rope["rope_type"])
    # rope_theta and rope_scaling for transformers 4, rope_parameters (the same numbers) for 5
    config = {**common, "hidden_size": b.d_model, "num_hidden_layers": b.n_layers, "num_attention_heads": b.n_heads,
              "num_key_value_heads": b.n_kv_heads or b.n_heads, "head_dim": b.d_model // b.n_heads,
              "intermediate_size": b.d_ff, "hidden_act": act, "max_position_embeddings": b.max_len,
              "rms_norm_eps": b.ln_eps, "rope_theta": b.rope_base, "rope_scaling": scaling, "rope_parameters": rope,
              "attention_dropout": b.dropout, "tie_word_embeddings": False}
    if fam == "llama":
        return {**config, "attention_bias": b.bias, "mlp_bias": b.bias}
    return {**config, "use_sliding_window": False, "sliding_window": None}


def mask_note(fam: str, mask: str) -> str:
    """How to get the task's attention from the transformers model, for the model card."""
    if mask in OWN_MASKS[fam]:
        return (f"it applies the task's {mask} attention by itself"
                + ("" if mask == "bidirectional" else " (`is_decoder: true`)" if fam == "bert" else ""))
    return (f"the task's attention is {mask}, which `{ARCHITECTURES[fam]}` does not apply by itself: pass it as a "
            "4-D boolean `attention_mask` (B, 1, T, T), True where a query may see a key "
            "(`suite.attention_mask` builds it)")
