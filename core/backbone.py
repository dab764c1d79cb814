"""The shared Transformer backbone: positions, blocks, final norm. No domain code lives here.

Every task builds the same module from the same preset, so its state-dict keys are identical
across tasks and a backbone trained on one task loads into any other. The options below cover
both pre-LN (GPT-2, the default) and post-LN (BERT) blocks so that imported language weights fit
exactly; they are chosen by the preset, never by the task.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

MASK_KINDS = ("causal", "bidirectional", "prefix")
# learned: a table of max_len vectors added to the input (GPT-2, BERT; what imported weights use).
# rotary: queries and keys rotated by their position (RoPE, Su et al. 2021); no parameters, so a
#         backbone's state dict is the same as with none. none: no positions (causal masks still
#         tell order). A task may number its tokens itself (batch["positions"], (B, T) ints): the
#         learned table is then indexed by those numbers and rotary angles come from them.
POSITION_KINDS = ("learned", "rotary", "none")


@dataclass
class BackboneConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    max_len: int = 256
    dropout: float = 0.0
    norm: str = "pre"  # "pre" (GPT-2) or "post" (BERT)
    final_norm: bool = True  # LayerNorm after the last block (pre-LN models)
    embed_norm: bool = False  # LayerNorm on the embeddings before the first block (BERT)
    positions: str = "learned"  # "learned" absolute, "rotary" (RoPE) or "none" (see POSITION_KINDS)
    rope_base: float = 10000.0  # rotary: the wavelength base of the lowest frequency
    bias: bool = True
    activation: str = "gelu"  # "gelu" (erf), "gelu_tanh" (GPT-2's gelu_new), "relu"
    ln_eps: float = 1e-5

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


# Fields that decide the shape and meaning of the weights; dropout does not.
ARCHITECTURE_FIELDS = tuple(f.name for f in fields(BackboneConfig) if f.name != "dropout")


class SelfAttention(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads = cfg.n_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool, rope=None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, C // heads)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.act = {
            "gelu": nn.GELU(),
            "gelu_tanh": nn.GELU(approximate="tanh"),
            "relu": nn.ReLU(),
        }[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps, bias=cfg.bias)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, attn_mask, is_causal, rope=None):
        if self.pre:
            x = x + self.drop(self.attn(self.ln1(x), attn_mask, is_causal, rope))
            return x + self.drop(self.mlp(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attn(x, attn_mask, is_causal, rope)))
        return self.ln2(x + self.drop(self.mlp(x)))


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B or 1, T) positions -> cos, sin of shape (B or 1, 1, T, head_dim // 2) for :func:`rotate`."""
    inv_freq = base ** -(torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None, :, None] * inv_freq  # (B, 1, T, head_dim // 2)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on (B, heads, T, head_dim), halves paired as in GPT-NeoX and LLaMA's HF port."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x)


def attention_mask(
    kind: str, T: int, *, prefix_len: torch.Tensor | None = None,
    padding: torch.Tensor | None = None, device=None,
) -> torch.Tensor | None:
    """Boolean mask (B or 1, 1, T, T), True where a query may attend to a key, or None for "all".

    kind: "causal", "bidirectional" or "prefix" (keys before prefix_len (B,) are visible to every
    query, the rest causally). padding (B, T) is True at padding positions; they are hidden as keys.
    Every query always sees itself, so padded rows never become all -inf (NaN in softmax).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, not {kind!r}")
    if kind == "bidirectional" and padding is None:
        return None
    idx = torch.arange(T, device=device)
    mask = torch.ones(1, 1, T, T, dtype=torch.bool, device=device)
    if kind in ("causal", "prefix"):
        mask = (idx[None, :] <= idx[:, None])[None, None]  # (1, 1, T, T)
    if kind == "prefix":
        if prefix_len is None:
            raise ValueError("a prefix mask needs prefix_len")
        visible = idx[None, :] < prefix_len.to(device)[:, None]  # (B, T) keys in the prefix
        mask = mask | visible[:, None, None, :]
    if padding is not None:
        mask = mask & ~padding.to(device)[:, None, None, :]
        mask = mask | torch.eye(T, dtype=torch.bool, device=device)[None, None]
    return mask


class Backbone(nn.Module):
    """(B, T, d_model) vectors from an adapter -> (B, T, d_model) hidden states."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.positions not in POSITION_KINDS:
            raise ValueError(f"backbone.positions must be one of {', '.join(POSITION_KINDS)}, not {cfg.positions!r}")
        if cfg.positions == "learned":
            self.pos_emb = nn.Parameter(torch.zeros(cfg.max_len, cfg.d_model))
        if cfg.positions == "rotary" and (cfg.d_model // cfg.n_heads) % 2:
            raise ValueError(f"rotary positions need an even head size, not {cfg.d_model // cfg.n_heads}")
        if cfg.embed_norm:
            self.embed_norm = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        if cfg.final_norm:
            self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps, bias=cfg.bias)
        self.reset_parameters()

    def reset_parameters(self):
        # GPT-2 initialisation, with the residual projections scaled by depth.
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            elif name == "pos_emb":
                nn.init.normal_(p, std=0.02)

    def forward(
        self, x: torch.Tensor, mask: str = "bidirectional", *,
        prefix_len: torch.Tensor | None = None, padding: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``positions``: (B, T) integer position of every token, when the task numbers them itself
        (for example digits by significance); by default 0, 1, ..., T - 1."""
        B, T, _ = x.shape
        kind = self.cfg.positions
        if positions is None:
            if T > self.cfg.max_len and kind == "learned":
                raise ValueError(f"sequence of {T} tokens is longer than the backbone's max_len {self.cfg.max_len}")
            positions = torch.arange(T, device=x.device)[None]  # (1, T)
        elif not torch.compiler.is_compiling():  # checks of the values; torch.export traces without them
            if positions.shape[-1] != T:
                raise ValueError(f"positions for {positions.shape[-1]} tokens given for a sequence of {T}")
            if kind == "learned" and int(positions.max()) >= self.cfg.max_len:
                raise ValueError(f"position {int(positions.max())} is beyond the backbone's max_len {self.cfg.max_len}")
        rope = None
        if kind == "learned":
            x = x + F.embedding(positions, self.pos_emb)  # not pos_emb[positions]: its backward adds in a thread-dependent order on CPU
        elif kind == "rotary":
            rope = rotary_angles(positions, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base)
        if self.cfg.embed_norm:
            x = self.embed_norm(x)
        x = self.drop(x)
        # Plain causal attention without padding takes SDPA's fused is_causal path.
        is_causal = mask == "causal" and padding is None
        attn_mask = None if is_causal else attention_mask(mask, T, prefix_len=prefix_len, padding=padding, device=x.device)
        for block in self.blocks:
            x = block(x, attn_mask, is_causal, rope)
        if self.cfg.final_norm:
            x = self.ln_f(x)
        return x


def architecture_differences(a: dict, b: dict) -> list[str]:
    """``key a != b`` for every architecture field that differs (fields a config lacks take their
    defaults: configs written before a field existed)."""
    a, b = BackboneConfig.from_dict(a).to_dict(), BackboneConfig.from_dict(b).to_dict()
    return [f"{k} {a[k]} != {b[k]}" for k in ARCHITECTURE_FIELDS if a[k] != b[k]]


def same_architecture(a: dict, b: dict) -> bool:
    return not architecture_differences(a, b)
