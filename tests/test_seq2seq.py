"""The encoder-decoder preset and sequence-to-sequence decoding: blocks against torch.nn.Transformer,
the key-value cache against reading the whole prefix, beam search against exhaustive search,
pair scores against step-by-step log-probabilities, corpus metrics against sacreBLEU."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import yaml
from torch import nn

import suite
from suite.backbone import Backbone, BackboneConfig, BackboneConfigError, check
from suite.tasks.seq2seq import Reader, beam_search, corpus_metric, generate, length_norm, score

CONFIGS = suite.__path__[0] + "/../configs/backbone"


def reference_pair(d=32, heads=4, ff=64, layers=2, norm_first=False):
    """Our encoder-decoder and torch.nn.Transformer with the same weights."""
    torch.manual_seed(0)
    ours = Backbone(BackboneConfig(d_model=d, n_heads=heads, d_ff=ff, n_encoder_layers=layers, n_decoder_layers=layers,
                                   norm="pre" if norm_first else "post", positions="none", activation="relu",
                                   final_norm=True, ln_eps=1e-5)).eval()
    ref = nn.Transformer(d, heads, layers, layers, ff, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    for side, blocks in (("encoder", ref.encoder.layers), ("decoder", ref.decoder.layers)):
        stack = getattr(ours, side)
        for mine, theirs in zip(stack.blocks, blocks):
            mine.attn.qkv.weight.data.copy_(theirs.self_attn.in_proj_weight)
            mine.attn.qkv.bias.data.copy_(theirs.self_attn.in_proj_bias)
            mine.attn.proj.load_state_dict(theirs.self_attn.out_proj.state_dict())
            mine.mlp.fc.load_state_dict(theirs.linear1.state_dict())
            mine.mlp.proj.load_state_dict(theirs.linear2.state_dict())
            mine.ln1.load_state_dict(theirs.norm1.state_dict())
            if side == "decoder":
                w, b = theirs.multihead_attn.in_proj_weight, theirs.multihead_attn.in_proj_bias
                mine.cross.q.weight.data.copy_(w[:d]), mine.cross.q.bias.data.copy_(b[:d])
                mine.cross.kv.weight.data.copy_(w[d:]), mine.cross.kv.bias.data.copy_(b[d:])
                mine.cross.proj.load_state_dict(theirs.multihead_attn.out_proj.state_dict())
                mine.ln_cross.load_state_dict(theirs.norm2.state_dict())
                mine.ln2.load_state_dict(theirs.norm3.state_dict())
            else:
                mine.ln2.load_state_dict(theirs.norm2.state_dict())
        stack.ln_f.load_state_dict(getattr(ref, side).norm.state_dict())
    return ours, ref


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_encoder_decoder_equals_torch_transformer(norm_first):
    ours, ref = reference_pair(norm_first=norm_first)
    torch.manual_seed(1)
    src, tgt = torch.randn(3, 7, 32), torch.randn(3, 5, 32)
    src_pad = torch.tensor([[False] * 7, [False] * 5 + [True] * 2, [False] * 3 + [True] * 4])
    tgt_pad = torch.tensor([[False] * 5, [False] * 4 + [True], [False] * 2 + [True] * 3])
    with torch.no_grad():
        want = ref(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(5), src_key_padding_mask=src_pad,
                   memory_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad, tgt_is_causal=True)
        memory = ours.encode(src, padding=src_pad)
        got = ours.decode(tgt, memory, memory_padding=src_pad, padding=tgt_pad)
        want_memory = ref.encoder(src, src_key_padding_mask=src_pad)
    real = ~tgt_pad
    assert (got - want)[real].abs().max() < 1e-5
    assert (memory - want_memory)[~src_pad].abs().max() < 1e-5
    # The mask matters: the same weights without the source padding give other outputs.
    with torch.no_grad():
        unpadded = ours.decode(tgt, ours.encode(src), padding=tgt_pad)
    assert (unpadded - want)[real].abs().max() > 1e-3


def test_transformer_base_is_the_papers_base_model():
    cfg = BackboneConfig.from_dict(yaml.safe_load(open(f"{CONFIGS}/transformer-base.yaml")))
    assert (cfg.n_encoder_layers, cfg.n_decoder_layers, cfg.d_model, cfg.n_heads, cfg.d_ff) == (6, 6, 512, 8, 2048)
    assert (cfg.norm, cfg.positions, cfg.dropout, cfg.activation, cfg.embed_scale) == ("post", "sinusoidal", 0.1, "relu", True)
    n = sum(p.numel() for p in Backbone(cfg).parameters())
    # With one 37,000-token embedding shared by source, target and the output layer: 63.1M (the paper: 65M).
    assert n + 37000 * 512 == 63_082_496


def test_sinusoids_are_the_papers():
    from suite.backbone import sinusoids

    pe = sinusoids(torch.arange(50)[None], 16)[0]
    pos, i = 37, 3
    assert math.isclose(pe[pos, 2 * i], math.sin(pos / 10000 ** (2 * i / 16)), abs_tol=1e-6)
    assert math.isclose(pe[pos, 2 * i + 1], math.cos(pos / 10000 ** (2 * i / 16)), abs_tol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"n_encoder_layers": 2}, "n_decoder_layers both above 0"),
    ({"n_encoder_layers": 2, "n_decoder_layers": 2, "parallel_residual": True}, "parallel_residual"),
    ({"positions": "sinusoidal", "d_model": 33, "n_heads": 3}, "even d_model"),
])
def test_bad_encoder_decoder_settings_are_one_line(bad, message):
    with pytest.raises(BackboneConfigError, match=message):
        check(BackboneConfig(**bad))


class Toy(nn.Module):
    """A module with the encode/decode surface of suite's SuiteModule: random weights, vocabulary V."""

    def __init__(self, V=7, positions="sinusoidal", seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = Backbone(BackboneConfig(d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2,
                                                positions=positions)).eval()
        self.embed, self.out = nn.Embedding(V, 32), nn.Linear(32, V)
        nn.init.normal_(self.out.weight, std=0.5)  # beams that differ from greedy

    def encode(self, batch):
        return self.backbone.encode(self.embed(batch["source"]), padding=batch.get("source_padding")), batch.get("source_padding")

    def decode(self, inputs, memory, memory_padding=None, *, padding=None, positions=None, cache=None):
        return self.out(self.backbone.decode(self.embed(inputs), memory, memory_padding=memory_padding, padding=padding,
                                             positions=positions, cache=cache))

    def forward(self, batch):
        return self.decode(batch["inputs"], *self.encode(batch), padding=batch.get("padding"))


def toy_batch(B=4, V=7):
    torch.manual_seed(2)
    source = torch.randint(3, V, (B, 6))
    padding = torch.zeros(B, 6, dtype=torch.bool)
    padding[1, 4:] = True
    padding[B - 1, 2:] = True
    return {"source": source.masked_fill(padding, 0), "source_padding": padding}


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("positions", ["sinusoidal", "rotary", "learned"])
def test_generation_with_the_cache_equals_without(beam, positions):
    model, batch = Toy(positions=positions), toy_batch()
    start = torch.ones(4, 1, dtype=torch.long)
    with_cache = generate(model, batch, start, 12, eos=2, beam=beam, length_penalty=0.6, cache=True)
    without = generate(model, batch, start, 12, eos=2, beam=beam, length_penalty=0.6, cache=False)
    assert with_cache.shape == (4, 12)
    assert torch.equal(with_cache, without)
    assert (with_cache != 2).any()  # not all EOS: the comparison sees real outputs


def test_beam_search_finds_the_best_hypothesis_of_exhaustive_search():
    """A beam as wide as every hypothesis is exhaustive: it must return the sequence with the best
    length-normalised log-probability over all sequences of up to max_new tokens."""
    V, max_new, alpha = 5, 3, 0.6
    model, batch = Toy(V=V), toy_batch(2, V)
    start = torch.ones(2, 1, dtype=torch.long)
    got = beam_search(Reader(model, batch), start, max_new, 2, K=V ** max_new, alpha=alpha)
    for row in range(2):
        one = {k: v[row: row + 1] for k, v in batch.items()}
        best, best_seq = -math.inf, None
        for n in range(1, max_new + 1):
            for seq in itertools.product(range(V), repeat=n):
                if 2 in seq[:-1] or (n < max_new and seq[-1] != 2):
                    continue  # EOS ends a hypothesis; shorter ones end with it
                tokens = torch.tensor([[1, *seq]])
                logp = model.decode(tokens[:, :-1], *model.encode(one)).log_softmax(-1)
                total = float(logp[0].gather(1, tokens[0, 1:, None]).sum()) / length_norm(n, alpha)
                if total > best:
                    best, best_seq = total, list(seq)
        want = best_seq + [2] * (max_new - len(best_seq))
        assert got[row].tolist() == want


def test_beam_search_beats_or_equals_greedy_on_its_own_objective():
    model, batch = Toy(seed=4), toy_batch()  # a model where the beam finds better than greedy
    start = torch.ones(4, 1, dtype=torch.long)
    with torch.no_grad():
        outs = {k: generate(model, batch, start, 8, eos=2, beam=k, length_penalty=0.0) for k in (1, 4)}
        def total(out):
            inputs = torch.cat([start, out[:, :-1]], 1)
            scored = torch.cat([torch.ones(4, 1, dtype=torch.bool), (out[:, :-1] != 2).cumprod(1).bool()], 1)
            logp = model({**batch, "inputs": inputs}).log_softmax(-1).gather(-1, out[..., None]).squeeze(-1)
            return (logp * scored).sum(1)
    assert (total(outs[4]) >= total(outs[1]) - 1e-5).all()
    assert (total(outs[4]) > total(outs[1]) + 1e-3).any()  # the toy has rows where the beam finds better


def test_score_is_the_sum_of_step_by_step_log_probabilities():
    model, batch = Toy(), toy_batch(2)
    target = torch.tensor([[5, 4, 3], [6, 3, 0]])
    inputs = torch.tensor([[1, 5, 4, 3], [1, 6, 3, 0]])
    targets = torch.tensor([[5, 4, 3, 2], [6, 3, 2, -100]])
    full = score(model, {**batch, "inputs": inputs, "targets": targets, "padding": targets == -100})
    reader = Reader(model, batch)  # an independent path: the cached decoder, one token at a time
    steps = torch.zeros(2)
    for t in range(4):
        logp = reader.step(inputs[:, : t + 1])
        ok = targets[:, t] != -100
        steps += torch.where(ok, logp.gather(1, targets[:, t].clamp_min(0)[:, None]).squeeze(1), torch.zeros(2))
    assert torch.allclose(full, steps, atol=1e-5)
    assert target.shape[0] == full.shape[0]


def test_corpus_metrics_added_over_batches_equal_sacrebleu_on_the_whole():
    from sacrebleu.metrics import BLEU, CHRF

    hyps = ["the cat sat on the mat", "hello there", "a dog", "zweihundert", "ein Hund bellt laut"]
    refs = [["the cat sat on a mat"], ["hello there", "hi there"], ["the dog"], ["zweihundert"], ["ein Hund bellt"]]
    for kind, whole in (("bleu", BLEU(effective_order=True).corpus_score), ("chrf", CHRF().corpus_score)):
        metric = corpus_metric(kind)
        metric.update(hyps[:2], refs[:2])
        metric.update(hyps[2:], refs[2:])
        streams = [[r[min(i, len(r) - 1)] for r in refs] for i in range(2)]
        assert math.isclose(float(metric.compute()), whole(hyps, streams).score, rel_tol=1e-9)


def test_fpt_freezes_cross_attention_with_the_other_attention_and_mlp_weights():
    backbone = Backbone(BackboneConfig(n_encoder_layers=1, n_decoder_layers=1))
    suite.freeze_backbone(backbone, "fpt")
    training = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert training and all(".ln" in f".{n}" or n.endswith("pos_emb") for n in training)
    assert not any(".cross." in n for n in training)


def test_either_side_starts_from_a_single_stack_run_and_cross_attention_starts_fresh(arith_run, tmp_path, capsys):
    """The encoder from one run, the decoder from another (here the same tiny arithmetic run); frozen,
    so the saved weights are what was loaded."""
    from safetensors.torch import load_file

    from conftest import run_dir_from, suite_main

    code, out, err = suite_main(capsys, "train", "--task", "arithmetic", "--backbone.preset", "transformer-tiny",
                                "--backbone.positions", "learned", "--init-encoder-from", arith_run,
                                "--init-decoder-from", arith_run, "--freeze", "backbone", "--trainer.max_steps", 2,
                                "--data.val_size", 16, "--data.test_size", 16, "--run.root", tmp_path, "--no-progress")
    assert code == 0, err
    assert "init encoder from run" in out and "27 tensors into backbone.encoder (blocks 0-1 of 2)" in out  # positions too
    assert "the cross-attention of every block (16 tensors)" in out
    source = load_file(arith_run / "weights" / "backbone.safetensors")
    mine = load_file(run_dir_from(out) / "weights" / "backbone.safetensors")
    for side in ("encoder", "decoder"):
        for k, v in source.items():
            assert torch.equal(mine[f"{side}.{k}"], v), (side, k)
    assert {k for k in mine if ".cross." in k or ".ln_cross." in k} == {
        f"decoder.blocks.{i}.{n}" for i in range(2) for n in
        ("ln_cross.weight", "ln_cross.bias", "cross.q.weight", "cross.q.bias", "cross.kv.weight", "cross.kv.bias",
         "cross.proj.weight", "cross.proj.bias")}


@pytest.mark.parametrize("args, message", [
    (["--init-from", "{run}"], "start an encoder-decoder's sides with --init-encoder-from"),
    (["--init-encoder-from", "{run}", "--backbone.preset", "transformer-small"], "its blocks are not this encoder's"),
    (["--init-decoder-from", "{run}", "--backbone.preset", "tiny"], "is not an encoder-decoder"),
])
def test_warm_starts_that_cannot_fit_are_one_line(arith_run, tmp_path, capsys, args, message):
    from conftest import suite_main

    args = [a.format(run=arith_run) for a in args]
    code, out, err = suite_main(capsys, "train", "--task", "arithmetic", "--backbone.preset", "transformer-tiny", *args,
                                "--trainer.max_steps", 1, "--run.root", tmp_path, "--no-progress")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_bleu_of_one_word_outputs_scores_the_words():
    """German numbers are single words: without the effective order every 2- to 4-gram precision is
    undefined and corpus BLEU is 0 however many are right."""
    metric = corpus_metric("bleu")
    metric.update(["dreihundertzwölf", "elf", "zwölf", "zwei"], [["dreihundertzwölf"], ["elf"], ["zwölf"], ["drei"]])
    assert math.isclose(float(metric.compute()), 75.0, rel_tol=1e-9)
