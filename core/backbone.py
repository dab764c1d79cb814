"""The shared Transformer backbone: positions, blocks, final norm. No domain code lives here.

Every task builds the same module from the same preset, so its state-dict keys are identical
across tasks and a backbone trained on one task loads into any other. The options below cover
both pre-LN (GPT-2, the default) and post-LN (BERT) blocks so that imported language weights fit
exactly; they are chosen by the preset, never by the task.

An encoder-decoder (the original Transformer, T5, BART, Whisper) is a preset of the same module:
``n_encoder_layers`` and ``n_decoder_layers`` make two stacks of the same blocks, ``encoder`` with a
bidirectional (padding-aware) mask and ``decoder`` with a causal one and one more sublayer per
block, cross-attention over the encoder's output. Generation reads the decoder a token at a time
through a :class:`KVCache`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SuiteError

MASK_KINDS = ("causal", "bidirectional", "prefix")
# learned: a table of max_len vectors added to the input (GPT-2, BERT; what imported weights use).
# rotary: queries and keys rotated by their position (RoPE, Su et al. 2021); no parameters, so a
#         backbone's state dict is the same as with none. none: no positions (causal masks still
#         tell order). A task may number its tokens itself (batch["positions"], (B, T) ints): the
#         learned table is then indexed by those numbers and rotary angles come from them.
#         sinusoidal: the fixed sines and cosines of Vaswani et al. 2017, added like the learned table.
POSITION_KINDS = ("learned", "rotary", "none", "sinusoidal")


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
    activation: str = "gelu"  # "gelu" (erf), "gelu_tanh" (GPT-2's gelu_new), "relu", "silu"
    ln_eps: float = 1e-5
    # The options of today's open language models (Llama, Qwen2, Mistral, GPT-NeoX); the defaults
    # are the blocks above, so saved runs keep their meaning.
    norm_type: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm: Llama, Qwen2, Mistral)
    mlp: str = "plain"  # "plain": proj(act(fc(x))); "gated": proj(act(gate(x)) * fc(x)) (SwiGLU with silu)
    n_kv_heads: int | None = None  # key-value heads (grouped-query attention); None: n_heads
    qkv_bias: bool | None = None  # bias of the query, key and value projections (Qwen2: only these); None: `bias`
    rope_scaling: dict | None = None  # rotary: transformers' rope_scaling ({"rope_type": "linear" | "llama3", "factor", ...})
    rotary_fraction: float = 1.0  # rotary: the share of each head's dimensions rotated (GPT-NeoX's rotary_pct)
    parallel_residual: bool = False  # x + attn(ln1(x)) + mlp(ln2(x)) in one residual step (GPT-NeoX)
    # An encoder-decoder: both > 0 make two stacks (`encoder.`, `decoder.`) and n_layers is not used;
    # both 0 (the default) is one stack of n_layers blocks.
    n_encoder_layers: int = 0
    n_decoder_layers: int = 0
    embed_scale: bool = False  # multiply the input vectors by sqrt(d_model) before positions (Vaswani et al. 2017)

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


# Fields that decide the shape and meaning of the weights; dropout does not.
ARCHITECTURE_FIELDS = tuple(f.name for f in fields(BackboneConfig) if f.name != "dropout")


class BackboneConfigError(SuiteError, ValueError):
    """A backbone configuration the blocks cannot build: one line, as every bad setting."""


ACTIVATIONS = {"gelu": lambda: nn.GELU(), "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "relu": lambda: nn.ReLU(),
               "silu": lambda: nn.SiLU()}
NORM_TYPES, MLP_KINDS = ("layer", "rms"), ("plain", "gated")


def make_norm(cfg: BackboneConfig) -> nn.Module:
    if cfg.norm_type == "rms":
        return nn.RMSNorm(cfg.d_model, eps=cfg.ln_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps, bias=cfg.bias)


class SelfAttention(nn.Module):
    """Multi-head attention through ``scaled_dot_product_attention``; with ``n_kv_heads`` < ``n_heads``,
    grouped-query attention (each key-value head serves n_heads / n_kv_heads query heads). ``qkv``
    holds the query, key and value projections one after the other."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads = cfg.n_heads, cfg.n_kv_heads or cfg.n_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * self.n_kv_heads * self.head_dim,
                             bias=cfg.bias if cfg.qkv_bias is None else cfg.qkv_bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool, rope=None,
                cache: dict | None = None) -> torch.Tensor:
        """``cache``: this layer's keys and values of the tokens before ``x`` (decoding a token at a
        time); they are read, and the new ones appended."""
        B, T, C = x.shape
        kv = self.n_kv_heads * self.head_dim
        q, k, v = self.qkv(x).split([C, kv, kv], dim=2)
        # (B, T, heads * head_dim) -> (B, heads, T, head_dim)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = (t.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2) for t in (k, v))
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if cache is not None:
            if cache.get("length"):  # the new query sees every cached key: causal by construction
                if T > 1:
                    raise ValueError("a key-value cache extends by one token at a time once filled")
                is_causal = False
            k, v = append(cache, k, v)
        return self.attend(q, k, v, attn_mask, is_causal)

    def attend(self, q, k, v, attn_mask, is_causal):
        """(B, heads, T, head_dim) queries over (B, kv heads, S, head_dim) keys and values -> (B, T, d_model)."""
        B, _, T, _ = q.shape
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0, enable_gqa=self.n_kv_heads != self.n_heads,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


def append(cache: dict, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Write new keys and values (B, heads, T, head_dim) after the cached ones, into buffers that
    double when full (so a token costs the same however many came before it), and return views of
    all of them."""
    L, T = cache.get("length", 0), k.shape[2]
    if "k" not in cache or L + T > cache["k"].shape[2]:
        capacity = max(16, 2 * (L + T))
        for name, new in (("k", k), ("v", v)):
            buffer = new.new_empty(*new.shape[:2], capacity, new.shape[3])
            if L:
                buffer[:, :, :L] = cache[name][:, :, :L]
            cache[name] = buffer
    cache["k"][:, :, L: L + T], cache["v"][:, :, L: L + T] = k, v
    cache["length"] = L + T
    return cache["k"][:, :, : L + T], cache["v"][:, :, : L + T]


class CrossAttention(SelfAttention):
    """A decoder's attention over the encoder's output (``memory``): queries from the decoder
    (``q``), keys and values from the memory (``kv``), through the same ``attend``. With a cache,
    the memory's keys and values are computed once and read at every later step."""

    def __init__(self, cfg: BackboneConfig):
        nn.Module.__init__(self)
        self.n_heads, self.n_kv_heads = cfg.n_heads, cfg.n_kv_heads or cfg.n_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.dropout = cfg.dropout
        bias = cfg.bias if cfg.qkv_bias is None else cfg.qkv_bias
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=bias)
        self.kv = nn.Linear(cfg.d_model, 2 * self.n_kv_heads * self.head_dim, bias=bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x, memory, memory_mask, cache: dict | None = None):
        """x (B, T, d), memory (B, S, d), memory_mask (B, 1, 1, S) True where a key is visible, or None."""
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        if cache is not None and "memory_k" in cache:
            k, v = cache["memory_k"], cache["memory_v"]
        else:
            S = memory.shape[1]
            k, v = (t.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2) for t in self.kv(memory).chunk(2, dim=2))
            if cache is not None:
                cache["memory_k"], cache["memory_v"] = k, v
        return self.attend(q, k, v, memory_mask, False)


class MLP(nn.Module):
    """``proj(act(fc(x)))``, or gated (``mlp: gated``): ``proj(act(gate(x)) * fc(x))`` (SwiGLU with silu)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        if cfg.mlp == "gated":
            self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.act = ACTIVATIONS[cfg.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "gate"):
            return self.proj(self.act(self.gate(x)) * self.fc(x))
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Self-attention and MLP sublayers, each with a residual connection and a norm (before the
    sublayer: pre-LN; after the sum: post-LN). A decoder block (``cross``) has a third sublayer
    between them, attention over the encoder's output (``ln_cross``, ``cross``)."""

    def __init__(self, cfg: BackboneConfig, cross: bool = False):
        super().__init__()
        self.pre, self.parallel = cfg.norm == "pre", cfg.parallel_residual
        self.ln1 = make_norm(cfg)
        self.attn = SelfAttention(cfg)
        if cross:
            self.ln_cross = make_norm(cfg)
            self.cross = CrossAttention(cfg)
        self.ln2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, attn_mask, is_causal, rope=None, memory=None, memory_mask=None, cache=None):
        if self.parallel:
            return x + self.drop(self.attn(self.ln1(x), attn_mask, is_causal, rope, cache)) + self.drop(self.mlp(self.ln2(x)))
        if self.pre:
            x = x + self.drop(self.attn(self.ln1(x), attn_mask, is_causal, rope, cache))
            if memory is not None:
                x = x + self.drop(self.cross(self.ln_cross(x), memory, memory_mask, cache))
            return x + self.drop(self.mlp(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attn(x, attn_mask, is_causal, rope, cache)))
        if memory is not None:
            x = self.ln_cross(x + self.drop(self.cross(x, memory, memory_mask, cache)))
        return self.ln2(x + self.drop(self.mlp(x)))


class KVCache:
    """What a decoder keeps between generation steps: per block, its self-attention keys and
    values so far and the cross-attention keys and values of the memory (computed at the first
    step). ``length``: the tokens already read, the position of the next one."""

    def __init__(self, n_blocks: int):
        self.layers: list[dict] = [{} for _ in range(n_blocks)]
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the rows ``index`` (B',) of every cached tensor, in that order (beam search)."""
        for layer in self.layers:
            for key, t in layer.items():
                if isinstance(t, torch.Tensor):
                    layer[key] = t.index_select(0, index)


def sinusoids(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """(B or 1, T) positions -> (B or 1, T, d_model): sin at even dimensions, cos at odd ones, wavelengths
    from 2 pi to 10000 * 2 pi (Vaswani et al. 2017, section 3.5)."""
    inv_freq = 10000.0 ** -(torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32) / d_model)
    angles = positions.float()[..., None] * inv_freq  # (B, T, d_model / 2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def rotary_frequencies(rotary_dim: int, base: float, scaling: dict | None = None, device=None) -> torch.Tensor:
    """The rotary inverse frequencies (rotary_dim // 2,), scaled as transformers' ``rope_scaling`` says:
    ``linear`` (every frequency / factor) or ``llama3`` (low frequencies / factor, high ones kept, a
    smooth blend between), as in Llama 3.1's config."""
    inv_freq = base ** -(torch.arange(0, rotary_dim, 2, device=device, dtype=torch.float32) / rotary_dim)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv_freq
    need = {"linear": ("factor",), "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
    if kind not in need:
        raise BackboneConfigError(f"backbone.rope_scaling: rope_type {kind!r} is not supported (linear, llama3)")
    missing = [k for k in need[kind] if k not in scaling]
    if missing:
        raise BackboneConfigError(f"backbone.rope_scaling: rope_type {kind} needs {', '.join(missing)}")
    factor = float(scaling["factor"])
    if kind == "linear":
        return inv_freq / factor
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])  # llama3
    original = float(scaling["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv_freq
    smooth = (original / wavelength - low) / (high - low)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    scaled = torch.where(wavelength > original / low, inv_freq / factor, inv_freq)
    middle = (wavelength <= original / low) & (wavelength >= original / high)
    return torch.where(middle, blended, scaled)


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float, scaling: dict | None = None,
                  fraction: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B or 1, T) positions -> cos, sin of shape (B or 1, 1, T, rotary_dim // 2) for :func:`rotate`;
    ``fraction``: the share of the head's dimensions rotated (the first ``rotary_dim``)."""
    inv_freq = rotary_frequencies(int(head_dim * fraction), base, scaling, positions.device)
    angles = positions.float()[:, None, :, None] * inv_freq  # (B, 1, T, rotary_dim // 2)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on (B, heads, T, head_dim), halves paired as in GPT-NeoX and LLaMA's HF port; only the
    first ``2 * cos.shape[-1]`` dimensions turn (partial rotary), the rest pass."""
    n = 2 * cos.shape[-1]
    x1, x2 = x[..., : n // 2], x[..., n // 2: n]
    turned = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x)
    return turned if n == x.shape[-1] else torch.cat([turned, x[..., n:]], dim=-1)


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
    """(B, T, d_model) vectors from an adapter -> (B, T, d_model) hidden states.

    An encoder-decoder preset (``n_encoder_layers``, ``n_decoder_layers``) holds two such stacks,
    ``encoder`` and ``decoder`` (its blocks with cross-attention), read through :meth:`encode` and
    :meth:`decode`; a stack of a decoder-only or encoder-only preset is read through ``forward``."""

    def __init__(self, cfg: BackboneConfig, cross: bool = False):
        super().__init__()
        self.cfg = cfg
        if cfg.positions not in POSITION_KINDS:
            raise BackboneConfigError(f"backbone.positions must be one of {', '.join(POSITION_KINDS)}, not {cfg.positions!r}")
        check(cfg)
        if is_encoder_decoder(cfg):
            stack = dict(n_encoder_layers=0, n_decoder_layers=0)
            self.encoder = Backbone(replace(cfg, n_layers=cfg.n_encoder_layers, **stack))
            self.decoder = Backbone(replace(cfg, n_layers=cfg.n_decoder_layers, **stack), cross=True)
            return
        if cfg.positions == "learned":
            self.pos_emb = nn.Parameter(torch.zeros(cfg.max_len, cfg.d_model))
        if cfg.embed_norm:
            self.embed_norm = make_norm(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, cross) for _ in range(cfg.n_layers))
        if cfg.final_norm:
            self.ln_f = make_norm(cfg)
        self.reset_parameters()

    @property
    def encoder_decoder(self) -> bool:
        return is_encoder_decoder(self.cfg)

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

    def encode(self, x: torch.Tensor, *, padding: torch.Tensor | None = None,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """An encoder-decoder's encoder: source vectors (B, S, d) -> memory (B, S, d), every token
        seeing every other (``padding`` (B, S): True at padding, hidden as keys)."""
        return self.encoder(x, "bidirectional", padding=padding, positions=positions)

    def decode(self, y: torch.Tensor, memory: torch.Tensor, *, memory_padding: torch.Tensor | None = None,
               padding: torch.Tensor | None = None, positions: torch.Tensor | None = None,
               cache: KVCache | None = None) -> torch.Tensor:
        """An encoder-decoder's decoder: target vectors (B, T, d) over the memory (B, S, d) -> (B, T, d),
        each target token seeing the ones before it. With ``cache`` (:meth:`new_cache`), ``y`` is the
        tokens after those already read (their positions follow on)."""
        return self.decoder(y, "causal", padding=padding, positions=positions, memory=memory,
                            memory_padding=memory_padding, cache=cache)

    def new_cache(self) -> KVCache:
        return KVCache(len((self.decoder if self.encoder_decoder else self).blocks))

    def forward(
        self, x: torch.Tensor, mask: str = "bidirectional", *,
        prefix_len: torch.Tensor | None = None, padding: torch.Tensor | None = None,
        positions: torch.Tensor | None = None, memory: torch.Tensor | None = None,
        memory_padding: torch.Tensor | None = None, cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``positions``: (B, T) integer position of every token, when the task numbers them itself
        (for example digits by significance); by default 0, 1, ..., T - 1 (after the cached tokens).
        ``memory``: the encoder's output, for a decoder stack's cross-attention."""
        if self.encoder_decoder:
            raise ValueError("an encoder-decoder backbone is read through encode() and decode()")
        B, T, _ = x.shape
        kind, start = self.cfg.positions, cache.length if cache is not None else 0
        if positions is None:
            if start + T > self.cfg.max_len and kind == "learned":
                raise ValueError(f"sequence of {start + T} tokens is longer than the backbone's max_len {self.cfg.max_len}")
            positions = torch.arange(start, start + T, device=x.device)[None]  # (1, T)
        elif not torch.compiler.is_compiling():  # checks of the values; torch.export traces without them
            if positions.shape[-1] != T:
                raise ValueError(f"positions for {positions.shape[-1]} tokens given for a sequence of {T}")
            if kind == "learned" and int(positions.max()) >= self.cfg.max_len:
                raise ValueError(f"position {int(positions.max())} is beyond the backbone's max_len {self.cfg.max_len}")
        if self.cfg.embed_scale:
            x = x * math.sqrt(self.cfg.d_model)
        rope = None
        if kind == "learned":
            x = x + F.embedding(positions, self.pos_emb)  # not pos_emb[positions]: its backward adds in a thread-dependent order on CPU
        elif kind == "sinusoidal":
            x = x + sinusoids(positions, self.cfg.d_model).to(x.dtype)
        elif kind == "rotary":
            rope = rotary_angles(positions, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base,
                                 self.cfg.rope_scaling, self.cfg.rotary_fraction)
        if self.cfg.embed_norm:
            x = self.embed_norm(x)
        x = self.drop(x)
        # Plain causal attention without padding takes SDPA's fused is_causal path; a token decoded
        # after cached ones sees all of them, so it needs no mask.
        is_causal = mask == "causal" and padding is None and start == 0
        attn_mask = None if is_causal or start else attention_mask(mask, T, prefix_len=prefix_len, padding=padding, device=x.device)
        memory_mask = None if memory_padding is None else ~memory_padding[:, None, None, :]  # (B, 1, 1, S)
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, is_causal, rope, memory, memory_mask, cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.length += T
        if self.cfg.final_norm:
            x = self.ln_f(x)
        return x


def is_encoder_decoder(cfg: BackboneConfig) -> bool:
    return bool(cfg.n_encoder_layers or cfg.n_decoder_layers)


def check(cfg: BackboneConfig) -> None:
    """One clear error for a configuration the blocks cannot build."""
    head = cfg.d_model // cfg.n_heads
    rules = [
        (cfg.d_model % cfg.n_heads == 0, f"d_model {cfg.d_model} must be divisible by n_heads {cfg.n_heads}"),
        (cfg.norm in ("pre", "post"), f"backbone.norm must be pre or post, not {cfg.norm!r}"),
        (cfg.norm_type in NORM_TYPES, f"backbone.norm_type must be one of {', '.join(NORM_TYPES)}, not {cfg.norm_type!r}"),
        (cfg.mlp in MLP_KINDS, f"backbone.mlp must be one of {', '.join(MLP_KINDS)}, not {cfg.mlp!r}"),
        (cfg.activation in ACTIVATIONS, f"backbone.activation must be one of {', '.join(ACTIVATIONS)}, not {cfg.activation!r}"),
        (cfg.n_kv_heads is None or (cfg.n_kv_heads > 0 and cfg.n_heads % cfg.n_kv_heads == 0),
         f"backbone.n_kv_heads {cfg.n_kv_heads} must divide n_heads {cfg.n_heads}"),
        (not is_encoder_decoder(cfg) or (cfg.n_encoder_layers > 0 and cfg.n_decoder_layers > 0),
         f"an encoder-decoder needs backbone.n_encoder_layers and n_decoder_layers both above 0, not "
         f"{cfg.n_encoder_layers} and {cfg.n_decoder_layers}"),
        (not is_encoder_decoder(cfg) or not cfg.parallel_residual, "backbone.parallel_residual has no decoder block with cross-attention"),
        (cfg.positions != "sinusoidal" or cfg.d_model % 2 == 0, f"sinusoidal positions need an even d_model, not {cfg.d_model}"),
        (0 < cfg.rotary_fraction <= 1, f"backbone.rotary_fraction must be in (0, 1], not {cfg.rotary_fraction}"),
        (cfg.positions != "rotary" or int(head * cfg.rotary_fraction) % 2 == 0,
         f"rotary positions need an even number of rotated dimensions per head, not {int(head * cfg.rotary_fraction)}"),
    ]
    for ok, message in rules:
        if not ok:
            raise BackboneConfigError(message)
    if cfg.positions == "rotary":
        rotary_frequencies(int(head * cfg.rotary_fraction), cfg.rope_base, cfg.rope_scaling)  # its own errors


def architecture_differences(a: dict, b: dict) -> list[str]:
    """``key a != b`` for every architecture field that differs (fields a config lacks take their
    defaults: configs written before a field existed)."""
    a, b = BackboneConfig.from_dict(a).to_dict(), BackboneConfig.from_dict(b).to_dict()
    return [f"{k} {a[k]} != {b[k]}" for k in ARCHITECTURE_FIELDS if a[k] != b[k]]


def same_architecture(a: dict, b: dict) -> bool:
    return not architecture_differences(a, b)
