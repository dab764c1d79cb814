"""Llama-family (llama, qwen2, mistral) and GPT-NeoX checkpoints imported into the shared backbone:
each reproduces transformers' own model of a small random config saved with ``save_pretrained``
(hidden states and next-token logits within 1e-4; nothing is downloaded), brings its tokenizer,
and starts other domains' runs (``--init-from hf:DIR``). `transformers` is the reference here only."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import suite
from suite.plugins.text import hf, source_tokenizer

from conftest import TINY, metrics, run_dir_from, suite_main

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

VOCAB = 96
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64, "rope_theta": 5e5}
CONFIGS = {
    # Llama with grouped-query attention (2 key-value heads for 4 query heads) and tied embeddings, as SmolLM2
    "llama": lambda: transformers.LlamaConfig(**COMMON, num_key_value_heads=2, rope_theta=1e5, tie_word_embeddings=True),
    # Llama 3.1's scaled rotary frequencies, untied output layer
    "llama3-scaled": lambda: transformers.LlamaConfig(**COMMON, num_key_value_heads=1, rope_parameters=LLAMA3_SCALING),
    # Qwen2: biases on the query, key and value projections only
    "qwen2": lambda: transformers.Qwen2Config(**COMMON, num_key_value_heads=2, rope_theta=1e6),
    "mistral": lambda: transformers.MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=None),
    # GPT-NeoX as Pythia: parallel residual, a quarter of each head rotated
    "gpt_neox": lambda: transformers.GPTNeoXConfig(**COMMON, rotary_pct=0.25, use_parallel_residual=True),
    "gpt_neox-sequential": lambda: transformers.GPTNeoXConfig(**COMMON, rotary_pct=0.5, use_parallel_residual=False),
}


def checkpoint(path, name: str):
    """A randomly initialised model of ``name``'s config, saved as a Hugging Face directory with a
    byte-level BPE tokenizer.json; returns transformers' model of it (eval mode)."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[name]()).eval()
    with torch.no_grad():  # non-zero biases and norm weights, so that a mis-mapped one shows
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(path)
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the capital of france is paris. " * 4, "pawn to e4, knight to f3"] * 8, vocab_size=VOCAB,
                            special_tokens=["<unk>", "<s>", "</s>"])
    bpe.save(str(path / "tokenizer.json"))
    return model


def backbone_and_head(pre: suite.Pretrained):
    bb = suite.Backbone(suite.BackboneConfig.from_dict(pre.backbone)).eval()
    part = lambda p: {k[len(p) + 1:]: v for k, v in pre.state_dict.items() if k.startswith(p + ".")}
    bb.load_state_dict(part("backbone"))  # strict: every backbone tensor has its counterpart
    return bb, part("adapter")["embed.weight"], part("head")["lm.weight"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_imported_family_reproduces_transformers(tmp_path, name):
    model = checkpoint(tmp_path, name)
    pre = hf.load_hf(str(tmp_path))
    bb, words, lm = backbone_and_head(pre)
    ids = torch.randint(0, VOCAB, (3, 37))
    with torch.no_grad():
        ours = bb(torch.nn.functional.embedding(ids, words), "causal")
        out = model(input_ids=ids, output_hidden_states=True)
        differ = (ours - out.hidden_states[-1]).abs().max()
        logits = (ours @ lm.T - out.logits).abs().max()
    assert differ < 1e-4 and logits < 1e-4, (differ, logits)
    scale = out.hidden_states[-1].abs().mean()
    assert scale > 0.1  # the comparison is of real activations, not of zeros
    cfg = CONFIGS[name]()
    assert pre.backbone["n_kv_heads" if "neox" not in name else "n_heads"] == getattr(cfg, "num_key_value_heads", 4)
    tied = cfg.tie_word_embeddings
    assert torch.equal(lm, words) == tied


def test_padded_batches_match_transformers_attention_mask(tmp_path):
    model = checkpoint(tmp_path, "qwen2")
    bb, words, _ = backbone_and_head(hf.load_hf(str(tmp_path)))
    ids = torch.randint(3, VOCAB, (2, 20))
    padding = torch.zeros(2, 20, dtype=torch.bool)
    padding[1, 14:] = True  # the second row is 14 tokens, padded on the right
    with torch.no_grad():
        ours = bb(torch.nn.functional.embedding(ids, words), "causal", padding=padding)
        theirs = model(input_ids=ids, attention_mask=(~padding).long(), output_hidden_states=True).hidden_states[-1]
    assert (ours - theirs)[~padding].abs().max() < 1e-4


@pytest.mark.parametrize("name", ["llama", "gpt_neox"])
def test_the_text_task_adopts_the_checkpoints_tokenizer(tmp_path, name):
    checkpoint(tmp_path, name)
    pre = hf.load_hf(str(tmp_path))
    tok = source_tokenizer(pre, {"data": {"tokenizer": "auto"}, "init": {"from": "hf"}})
    reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    text = "the capital of france is paris"
    assert tok.encode(text) == reference(text, add_special_tokens=False)["input_ids"]
    assert (tok.BOS, tok.EOS) == (1, 2)  # config.json's bos_token_id and eos_token_id
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("name", ["llama", "gpt_neox"])
def test_init_from_a_llama_or_neox_directory_trains_vision_with_fpt(tmp_path, capsys, name):
    checkpoint(tmp_path / "ckpt", name)
    code, out, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--init-from", f"hf:{tmp_path / 'ckpt'}",
                                "--freeze", "fpt", "--trainer.max_steps", 3, "--trainer.val_check_interval", 3,
                                "--run.root", tmp_path / "runs")
    assert code == 0, err
    run = run_dir_from(out)
    source = {k[len("backbone."):]: v for k, v in hf.load_hf(str(tmp_path / "ckpt")).state_dict.items() if k.startswith("backbone.")}
    assert f"loaded {len(source)} tensors, skipped 0" in out
    after = load_file(str(run / "weights" / "backbone.safetensors"))
    changed = {k for k, v in after.items() if not torch.equal(v, source[k])}
    # FPT: the norms train, attention and MLP weights stay the source's
    assert changed and all(".ln" in k or k.startswith("ln_f") for k in changed)
    assert metrics(run)["step"] == 3


@pytest.mark.parametrize("name, blocks", [("llama", ["norm_type: rms", "mlp: gated", "n_kv_heads: 2"]),
                                          ("gpt_neox", ["parallel_residual: true", "rotary_fraction: 0.25"])])
def test_init_from_a_llama_or_neox_directory_trains_chess(tmp_path, capsys, name, blocks):
    from test_chess_cli import lichess_pgn

    checkpoint(tmp_path / "ckpt", name)
    pgn = tmp_path / "games.pgn"
    pgn.write_text(lichess_pgn(20))
    code, out, err = suite_main(capsys, "train", "--task", "chess", *TINY, "--init-from", f"hf:{tmp_path / 'ckpt'}",
                                "--data.pgn", pgn, "--data.batch_size", 16, "--trainer.max_steps", 2,
                                "--trainer.val_check_interval", 2, "--run.root", tmp_path / "runs")
    assert code == 0, err
    run = run_dir_from(out)
    cfg = (run / "config.yaml").read_text()
    assert all(line in cfg for line in blocks)
    assert metrics(run)["init"]["skipped"] == 0 and metrics(run)["step"] == 2
