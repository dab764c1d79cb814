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
