import math

import pytest
import torch

import suite
from suite.backbone import ARCHITECTURE_FIELDS, Backbone, BackboneConfig, attention_mask

CFG = BackboneConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=32)


def backbone(**kw):
    torch.manual_seed(0)
    return Backbone(BackboneConfig(**{**CFG.to_dict(), **kw})).eval()


@pytest.mark.parametrize("kind", ["causal", "bidirectional", "prefix"])
def test_shapes_for_every_mask_kind(kind):
    x = torch.randn(3, 10, 32)
    out = backbone()(x, kind, prefix_len=torch.tensor([2, 5, 10]))
    assert out.shape == (3, 10, 32)
    assert torch.isfinite(out).all()


def changed_positions(kind, change_at, prefix_len=None):
    """Which output positions move when the input at ``change_at`` changes."""
    m = backbone()
    x = torch.randn(1, 8, 32)
    y = x.clone()
    y[0, change_at] += torch.randn(32)
    pl = torch.tensor([prefix_len]) if prefix_len is not None else None
    diff = (m(x, kind, prefix_len=pl) - m(y, kind, prefix_len=pl)).abs().amax(-1)[0]
    return [i for i, d in enumerate(diff.tolist()) if d > 1e-6]


def test_causal_mask_hides_the_future():
    assert changed_positions("causal", 5) == [5, 6, 7]


def test_bidirectional_mask_sees_everything():
    assert changed_positions("bidirectional", 7) == list(range(8))


def test_prefix_mask_is_bidirectional_inside_the_prefix_and_causal_after():
    assert changed_positions("prefix", 3, prefix_len=4) == list(range(8))  # a prefix token: seen by all
    assert changed_positions("prefix", 5, prefix_len=4) == [5, 6, 7]  # an answer token: only later ones


def test_padding_keys_are_ignored_and_never_produce_nan():
    m = backbone()
    x = torch.randn(2, 6, 32)
    padding = torch.tensor([[True, True, False, False, False, False], [False] * 6])
    y = x.clone()
    y[0, :2] = 100.0  # change only the padded positions of row 0
    for kind in ("causal", "bidirectional", "prefix"):
        kw = dict(prefix_len=torch.tensor([3, 3]), padding=padding)
        a, b = m(x, kind, **kw), m(y, kind, **kw)
        assert torch.isfinite(a).all()
        assert torch.allclose(a[0, 2:], b[0, 2:], atol=1e-5), kind


def test_sdpa_attention_matches_the_textbook_formula():
    torch.manual_seed(1)
    m = backbone(n_layers=1)
    attn = m.blocks[0].attn
    x = torch.randn(2, 7, 32)
    mask = attention_mask("prefix", 7, prefix_len=torch.tensor([3, 5]))
    got = attn(x, mask, False)
    q, k, v = attn.qkv(x).split(32, dim=2)
    q, k, v = (t.view(2, 7, 4, 8).transpose(1, 2) for t in (q, k, v))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(8)
    scores = scores.masked_fill(~mask, float("-inf"))
    want = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 32))
    assert torch.allclose(got, want, atol=1e-5)


def test_post_ln_and_pre_ln_share_keys_but_compute_differently():
    pre, post = backbone(), backbone(norm="post", final_norm=False, embed_norm=True)
    x = torch.randn(1, 5, 32)
    assert not torch.allclose(pre(x), post(x))
    assert set(pre.state_dict()) - set(post.state_dict()) == {"ln_f.weight", "ln_f.bias"}


def test_too_long_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match="max_len"):
        backbone()(torch.randn(1, 33, 32))


def test_unknown_mask_kind_is_rejected():
    with pytest.raises(ValueError, match="mask kind"):
        attention_mask("diagonal", 4)


def test_dropout_is_not_an_architecture_field():
    assert "dropout" not in ARCHITECTURE_FIELDS and "d_model" in ARCHITECTURE_FIELDS


def test_public_api_exports_the_plugin_building_blocks():
    for name in ("hookimpl", "Task", "WeightSource", "Tokenizer", "EmbeddingAdapter", "ClassifierHead",
                 "TokenHead", "Classification", "Generation", "SuiteError"):
        assert hasattr(suite, name), name


def test_rotary_attention_depends_only_on_relative_positions():
    m, x = backbone(positions="rotary"), torch.randn(2, 6, 32)
    for block in m.blocks:  # sharp attention, so that positions matter
        torch.nn.init.normal_(block.attn.qkv.weight, std=0.5)
    at = torch.arange(6)[None].expand(2, 6)
    shifted = m(x, "causal", positions=at + 17)
    assert torch.allclose(m(x, "causal", positions=at), shifted, atol=1e-5)
    assert torch.allclose(m(x, "causal"), shifted, atol=1e-5)  # default numbering 0..T-1
    assert not torch.allclose(m(x, "causal", positions=at.flip(1)), shifted, atol=1e-3)


def test_task_positions_index_the_learned_table():
    m, x = backbone(), torch.randn(1, 5, 32)
    assert torch.allclose(m(x, positions=torch.arange(5)[None]), m(x))
    assert not torch.allclose(m(x, positions=torch.tensor([[3, 3, 0, 1, 9]])), m(x))
    with pytest.raises(ValueError, match="positions for 4 tokens"):
        m(x, positions=torch.arange(4)[None])
    with pytest.raises(ValueError, match="max_len 32"):
        m(x, positions=torch.tensor([[0, 1, 2, 3, 40]]))


def test_position_options_share_their_state_dict_keys():
    keys = {kind: set(backbone(positions=kind).state_dict()) for kind in ("learned", "rotary", "none")}
    assert keys["rotary"] == keys["none"] == keys["learned"] - {"pos_emb"}
    # without a learned table a sequence may exceed max_len
    assert backbone(positions="rotary")(torch.randn(1, 40, 32)).shape == (1, 40, 32)
    with pytest.raises(ValueError, match="learned, rotary, none"):
        backbone(positions="alibi")


def test_init_from_another_position_option_says_which_setting_differs():
    from suite import train
    from suite.config import expand_preset

    cfg = expand_preset({"backbone": {"preset": "tiny"}, "init": {"from": "somewhere"}}, None)
    source = {**cfg["backbone"], "positions": "rotary"}
    with pytest.raises(suite.SuiteError, match="positions rotary != learned.*--backbone.positions rotary"):
        train.apply_init(None, cfg, None, origin_state=("run", source, {}, "run somewhere"))
    # configs written before rope_base existed still match
    old = {k: v for k, v in cfg["backbone"].items() if k != "rope_base"}
    assert suite.runs.same_architecture(old, cfg["backbone"])


def test_grouped_query_attention_equals_multi_head_with_repeated_key_value_heads():
    """n_kv_heads 2 of 4: each key-value head serves two query heads, as a multi-head backbone whose
    key and value projections repeat them does."""
    torch.manual_seed(0)
    gqa = Backbone(BackboneConfig(d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, positions="rotary")).eval()
    mha = Backbone(BackboneConfig(d_model=32, n_heads=4, n_layers=2, positions="rotary")).eval()
    state = gqa.state_dict()
    for i in range(2):
        w = state[f"blocks.{i}.attn.qkv.weight"]
        assert w.shape == (32 + 2 * 2 * 8, 32)  # queries, then 2 key heads and 2 value heads of 8
        q, k, v = w.split([32, 16, 16])
        repeat = lambda t: t.view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)  # noqa: E731
        state[f"blocks.{i}.attn.qkv.weight"] = torch.cat([q, repeat(k), repeat(v)])
        b = state[f"blocks.{i}.attn.qkv.bias"]
        state[f"blocks.{i}.attn.qkv.bias"] = torch.cat([b[:32], b[32:48].view(2, 8).repeat_interleave(2, 0).flatten(),
                                                        b[48:].view(2, 8).repeat_interleave(2, 0).flatten()])
    mha.load_state_dict(state)
    x = torch.randn(3, 11, 32)
    padding = torch.zeros(3, 11, dtype=torch.bool)
    padding[0, 7:] = True
    with torch.no_grad():
        assert torch.allclose(gqa(x, "causal"), mha(x, "causal"), atol=1e-5)
        assert torch.allclose(gqa(x, "bidirectional", padding=padding), mha(x, "bidirectional", padding=padding), atol=1e-5)


def test_family_options_change_the_blocks_not_the_defaults():
    """The defaults are the blocks every preset always had: the same keys and shapes; each option
    adds or changes exactly what it names."""
    base = Backbone(BackboneConfig()).state_dict()
    assert set(base) == set(Backbone(BackboneConfig(norm_type="layer", mlp="plain", n_kv_heads=None)).state_dict())
    rms = Backbone(BackboneConfig(norm_type="rms")).state_dict()
    assert {k for k in base if k.endswith(".bias") and ("ln" in k)} and not {k for k in rms if "ln" in k and k.endswith(".bias")}
    gated = Backbone(BackboneConfig(mlp="gated", activation="silu")).state_dict()
    assert set(gated) - set(base) == {"blocks.0.mlp.gate.weight", "blocks.0.mlp.gate.bias",
                                      "blocks.1.mlp.gate.weight", "blocks.1.mlp.gate.bias"}
    qwen = Backbone(BackboneConfig(bias=False, qkv_bias=True)).state_dict()
    assert {k for k in qwen if k.endswith(".bias")} == {"blocks.0.attn.qkv.bias", "blocks.1.attn.qkv.bias"}
    parallel = Backbone(BackboneConfig(parallel_residual=True)).eval()
    parallel.load_state_dict(base)
    x = torch.randn(2, 5, 64)
    sequential = Backbone(BackboneConfig()).eval()
    sequential.load_state_dict(base)
    with torch.no_grad():
        assert not torch.allclose(parallel(x), sequential(x))  # the same weights, another residual stream


def test_partial_rotary_turns_only_the_first_dimensions():
    from suite.backbone import rotary_angles, rotate

    x = torch.randn(1, 2, 5, 16)
    cos, sin = rotary_angles(torch.arange(5)[None], 16, 10000.0, fraction=0.25)
    y = rotate(x, cos, sin)
    assert torch.equal(y[..., 4:], x[..., 4:]) and not torch.allclose(y[..., :4], x[..., :4])


@pytest.mark.parametrize("setting, message", [
    (["--backbone.n_kv_heads", "3"], "backbone.n_kv_heads 3 must divide n_heads 4"),
    (["--backbone.norm_type", "batch"], "backbone.norm_type must be one of layer, rms, not 'batch'"),
    (["--backbone.mlp", "moe"], "backbone.mlp must be one of plain, gated, not 'moe'"),
    (["--backbone.positions", "rotary", "--backbone.rope_scaling", '{"rope_type": "yarn", "factor": 4}'],
     "backbone.rope_scaling: rope_type 'yarn' is not supported (linear, llama3)"),
])
def test_a_backbone_option_it_cannot_build_is_one_line(tmp_path, capsys, setting, message):
    from conftest import suite_main

    code, out, err = suite_main(capsys, "train", "--task", "vision", "--backbone.preset", "tiny", *setting,
                                "--trainer.max_steps", 1, "--run.root", tmp_path)
    assert code != 0 and err.strip() == f"suite: error: {message}"
