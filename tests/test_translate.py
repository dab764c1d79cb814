"""The translate task: numbers in words split by length, a dictd dictionary this file writes, pairs
files (TSV, JSON Lines) and a local Hugging Face data set, the BPE tokenizer, bad input through the
CLI, and one tiny training run with eval and predict."""
from __future__ import annotations

import gzip
import importlib.util
import json
import pickle
from pathlib import Path

import pytest
from num2words import num2words

import suite
from suite import testing
from suite.plugins.text import translate as tr
from suite.plugins.text import translate_data as td

from conftest import metrics, suite_main

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NO_DICT = {"data.dictionary": "none"}
SMALL = {"data.val_size": 40, "data.test_size": 40, "data.max_digits": 3, "data.long_digits": [4, 5], "data.vocab_size": 300}

# Entries as FreeDict's English-German file writes them: headword /pronunciation/, the translations
# (with grammar and domain marks), then examples, notes and links, indented.
ENTRIES = [
    ("00databaseinfo", "00-database-info\nThis is a test dictionary.\n"),
    ("dog", 'dog /dˈɒɡ/\nHund <masc> [zool.]\n      "train a dog"  - einen Hund abrichten\n   Synonym: {dawg}\n see: {dogs}\n'),
    ("dog", "dog /dˈɒɡ/\nKlampe <fem>, Klemme <fem> [techn.]\n"),
    ("house", "house /hˈaʊs/\nHaus <neut>\n"),
    ("champ on sth", "champ on sth. /tʃˈamp ˌɒn/\netw. mampfen <v, trans> [cook.]\n"),
    ("the quick brown fox jumps", "the quick brown fox jumps /ðə/\nder schnelle braune Fuchs springt\n"),
    ("cat", "computed axial tomography /kəmpjˈuːtɪd/ (CAT /kˈat/)\nComputertomografie <fem> [med.]\n"),
    ("good morning", "Good morning! /ɡˈʊd mˈɔːnɪŋ/\nGuten Morgen!, Guten Tag!\n"),
    ("apple", "apple /ˈapəl/\nApfel <masc> [bot.]\n"),
    ("tree", "tree /tɹˈiː/\nBaum <masc>\n"),
    ("green", "green /ɡɹˈiːn/\ngrün <adj>\n"),
    ("water", "water /wˈɔːtə/\nWasser <neut>\n"),
    ("bread", "bread /bɹˈɛd/\nBrot <neut>\n"),
    ("three", "three /θɹˈiː/\ndrei\n"),
]


def b64(n: int) -> str:
    out = B64[n % 64]
    while n >= 64:
        n //= 64
        out = B64[n % 64] + out
    return out


def write_dictd(base: Path, entries=ENTRIES, extra_index: str = "") -> Path:
    """A dictd dictionary: base.dict.dz (gzip text) and base.index (headword, base64 offset, length)."""
    body, index = b"", []
    for head, entry in entries:
        raw = entry.encode()
        index.append(f"{head}\t{b64(len(body))}\t{b64(len(raw))}")
        body += raw
    with gzip.open(f"{base}.dict.dz", "wb") as f:
        f.write(body)
    Path(f"{base}.index").write_text("\n".join(sorted(index)) + "\n" + extra_index, encoding="utf-8")
    return base


def build(overrides: dict):
    cfg = testing.resolve("translate", {**SMALL, **overrides})
    task = testing.get_task("translate")
    tok = task.build_tokenizer(cfg)
    return tok, task.build_data(tok, cfg), cfg


def texts(tok, dataset) -> set[tuple[str, str]]:
    return {(tok.decode_target(s["source"]), tok.decode_target(s["target"])) for s in dataset}


# -- numbers --------------------------------------------------------------------------------------------
def test_numbers_are_german_and_split_by_length():
    tok, splits, _ = build(NO_DICT)
    assert set(splits) == {"train", "val", "test", "test_long"}
    assert num2words(345, lang="en") == "three hundred and forty-five" and num2words(345, lang="de") == "dreihundertfünfundvierzig"
    english = {num2words(n, lang="en"): n for n in range(1000)}
    for sample in splits["test"]:
        n = english[tok.decode_target(sample["source"])]  # at most max_digits (3) digits
        assert sample["references"] == [num2words(n, lang="de")] == [tok.decode_target(sample["target"])]
    test, long = texts(tok, splits["test"]), texts(tok, splits["test_long"])
    for source, target in long:  # 4 and 5 digits
        assert source not in english and "thousand" in source and "tausend" in target
    train = texts(tok, (s for _, s in zip(range(3000), splits["train"].configure(64))))
    assert train and not train & (test | texts(tok, splits["val"])) and not texts(tok, splits["val"]) & test


def test_batches_fit_the_objective():
    batches = testing.check_batches("translate", {**SMALL, **NO_DICT, "backbone.preset": "transformer-tiny"})
    assert batches["test"]["references"] and batches["train"]["source"].dtype.is_floating_point is False


def test_other_languages_by_the_same_settings():
    assert td.number_pair(80, "fr", "en") == td.Pair("quatre-vingts", "eighty")
    tok, splits, _ = build({**NO_DICT, "data.source_lang": "de", "data.target_lang": "fr"})
    source, target = next(iter(texts(tok, splits["test"])))
    n = {num2words(i, lang="de"): i for i in range(1000)}[source]
    assert target == num2words(n, lang="fr")


# -- the dictionary ---------------------------------------------------------------------------------------
def test_dictd_entries_become_pairs_with_every_translation_a_reference(tmp_path, capsys):
    base = write_dictd(tmp_path / "freedict-eng-deu", extra_index="broken line without tabs\n")
    pairs, report = td.read_dictionary(base, False, 3)
    by = {p.source: p for p in pairs}
    assert by["dog"] == td.Pair("dog", "Hund", ("Hund", "Klampe", "Klemme"))  # the entry with examples first
    assert by["train a dog"].target == "einen Hund abrichten"  # an example: a phrase pair
    assert by["Good morning!"].references == ("Guten Morgen!", "Guten Tag!")
    assert by["green"].target == "grün" and "computed axial tomography" in by
    assert not {"champ on sth.", "the quick brown fox jumps"} & set(by)  # a placeholder; more than 3 words
    assert report.entries == 13 and report.skipped["unreadable index lines"] == 1
    assert report.skipped["entries not plain words of at most 3"] == 2
    reverse = {p.source: p for p in td.read_dictionary(base, True, 3)[0]}
    assert reverse["Klemme"].target == "dog" and reverse["Haus"].references == ("house",)
    # as a setting: the file's path, its direction read from its FreeDict name
    d = {"dictionary": str(base) + ".index", "source_lang": "de", "target_lang": "en"}
    assert td.find_dictionary(d) == (base, True)


def test_dictionary_pairs_train_and_hold_out_test_dict(tmp_path):
    base = write_dictd(tmp_path / "words")
    tok, splits, _ = build({"data.dictionary": str(base), "data.dict_holdout_percent": 50, "data.dict_percent": 100})
    held = texts(tok, splits["test_dict"])
    train = {tok.decode_target(s["source"]) for _, s in zip(range(200), splits["train"].configure(8))}
    assert held and train and not {s for s, _ in held} & train
    assert all(len(s["references"]) >= 1 for s in splits["test_dict"])


# -- pairs files and data sets ----------------------------------------------------------------------------
def test_pairs_files_tsv_and_jsonl_split_by_hash(tmp_path):
    rows = [(f"sentence {i}", f"Satz {i}") for i in range(60)]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in rows) + "\n", encoding="utf-8")
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"source": s, "target": t}) + "\n" if i % 2 else
                             json.dumps({"translation": {"en": s, "de": t, "fr": "x"}}) + "\n" for i, (s, t) in enumerate(rows)))
    d = {"source_lang": "en", "target_lang": "de"}
    assert td.read_pairs(str(tsv), d) == td.read_pairs(str(jsonl), d) == [td.Pair(s, t) for s, t in rows]
    tok, splits, cfg = build({"data.pairs": str(jsonl), "data.holdout_percent": 40})
    parts = {k: texts(tok, v) for k, v in splits.items()}
    assert set(parts) == {"train", "val", "test"} and sum(map(len, parts.values())) == 60
    assert parts["val"] and parts["test"] and not parts["train"] & parts["test"]
    # suite eval RUN --data.pairs FILE: every pair of the file is the test split
    evaluated = testing.get_task("translate").build_eval_data(tok, cfg)
    assert list(evaluated) == ["test"] and len(evaluated["test"]) == 60


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs suite[datasets]")
def test_hugging_face_translation_column(tmp_path, capsys):
    import datasets

    def rows(n, start):
        return {"translation": [{"en": f"number {i}", "de": f"Nummer {i}"} for i in range(start, start + n)]}

    train = rows(20, 0)
    train["translation"].append({"en": "a row without its German", "de": " "})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(train),
                          "test": datasets.Dataset.from_dict(rows(5, 100))}).save_to_disk(str(tmp_path / "wmt"))
    tok, splits, _ = build({"data.dataset": f"hf:{tmp_path / 'wmt'}", "data.holdout_percent": 40})
    assert texts(tok, splits["test"]) == {(f"number {i}", f"Nummer {i}") for i in range(100, 105)}
    assert len(splits["train"]) + len(splits["val"]) == 20 and len(splits["val"]) > 0
    assert "skipped 1 row(s)" in capsys.readouterr().err
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"translation": {"de": f"Nummer {i}", "en": f"number {i}"}}) + "\n"
                                                 for i in range(30)))
    tok, splits, _ = build({"data.dataset": f"hf:{tmp_path / 'rows.jsonl'}", "data.source_lang": "de", "data.target_lang": "en",
                            "data.holdout_percent": 40})
    every = set().union(*(texts(tok, v) for v in splits.values()))
    assert len(every) == 30 and ("Nummer 3", "number 3") in every
    with pytest.raises(suite.SuiteError, match=r"wmt train: no column 'pairs' \(columns: translation\); set --data.translation_"):
        build({"data.dataset": f"hf:{tmp_path / 'wmt'}", "data.translation_column": "pairs"})


# -- tokenizer --------------------------------------------------------------------------------------------
def test_tokenizer_round_trips_text_and_state():
    tok = tr.BPETokenizer.train([num2words(n, lang=lang) for n in range(0, 3000, 7) for lang in ("en", "de")], 300)
    assert (tok.PAD, tok.BOS, tok.EOS, tok.UNK) == (0, 1, 2, 3) and tok.vocab_size == 300
    for sample in ("dreihundertfünfundvierzigtausend", "Grüße, Straße! 日本 😀", "  two  spaces "):
        ids = tok.encode_target(sample)
        assert min(ids) > tok.UNK and tok.decode_target(ids) == sample and tok.encode_source(sample) == ids
    assert tok.decode_target([tok.BOS, *tok.encode_target("drei"), tok.EOS, tok.PAD]) == "drei"
    again = testing.roundtrip_tokenizer("translate", tok)
    assert again.encode_target("siebenhundert") == tok.encode_target("siebenhundert")
    assert pickle.loads(pickle.dumps(again)).decode_target(tok.encode_target("elf")) == "elf"


# -- bad input, through the CLI ------------------------------------------------------------------------------
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {"bad.tsv": "one\teins\ntwo\tzwei\nthree zwei drei\n",
             "bad.jsonl": '{"source": "a", "target": "b"}\n{"source": "a"\n',
             "nolang.jsonl": '{"translation": {"en": "a", "fr": "b"}}\n', "empty.tsv": "\n\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("args, message", [
    (["--data.pairs", "{tmp}/missing.tsv"], "data.pairs {tmp}/missing.tsv: no such file"),
    (["--data.pairs", "{tmp}/bad.tsv"], "{tmp}/bad.tsv:3: a TSV line must be source<TAB>target, this one has 1 field(s)"),
    (["--data.pairs", "{tmp}/bad.jsonl"], "{tmp}/bad.jsonl:2: not valid JSON"),
    (["--data.pairs", "{tmp}/nolang.jsonl"], "{tmp}/nolang.jsonl:1: the translation has no 'de' text"),
    (["--data.pairs", "{tmp}/empty.tsv"], "{tmp}/empty.tsv: no pairs in the file"),
    (["--data.target_lang", "xx"], "data.target_lang 'xx': num2words does not write numbers in that language"),
    (["--data.dictionary", "{tmp}/nowhere.index"], "data.dictionary {tmp}/nowhere.index: no dictd file {tmp}/nowhere.index"),
    (["--data.source_lang", "fr", "--data.target_lang", "es", "--data.dictionary", "freedict"],
     "no FreeDict fr-es dictionary is installed"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad_files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = suite_main(capsys, "train", "--task", "translate", "--run.root", tmp_path, "--threads", 1, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("suite: error:") and message.replace("{tmp}", str(tmp_path)) in lines[0], err


# -- a tiny run -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """Two steps of `suite train --task translate` (the CLI, in this process) on a small setting,
    with this file's dictionary."""
    root = tmp_path_factory.mktemp("translate")
    base = write_dictd(root / "words")
    return testing.train("translate", root, steps=2, overrides={
        **SMALL, "backbone.preset": "transformer-tiny", "data.dictionary": f"{base}.index", "data.dict_holdout_percent": 50,
        "model.max_output": 8, "run.threads": 1})


def test_tiny_run_reports_every_split(tiny_run):
    m = metrics(tiny_run)
    assert m["primary"] == "exact_match" and m["step"] == 2
    assert set(m["splits"]) == {"val", "test", "test_long", "test_dict"}
    for split in m["splits"].values():
        assert {"exact_match", "bleu", "chrf", "loss"} <= set(split)
    state = json.loads((tiny_run / "tokenizer.json").read_text())
    assert tr.BPETokenizer.from_state(state).vocab_size <= 300


def test_eval_with_a_pairs_file_and_predict(tiny_run, tmp_path, capsys):
    pairs = tmp_path / "mine.tsv"
    pairs.write_text("one\teins\ntwo hundred\tzweihundert\nthree\tdrei\n")
    code, out, err = suite_main(capsys, "eval", tiny_run, "--data.pairs", pairs, "--no-progress")
    assert code == 0, err
    assert "test" in out and "test_long" not in out and "val" not in out
    code, out, err = suite_main(capsys, "predict", tiny_run, "forty-two", "--beam", 2)
    assert code == 0 and out.strip() != "" and len(out.strip().splitlines()) == 1, err
    code, _, err = suite_main(capsys, "predict", tiny_run, "  ")
    assert code == 2 and "nothing to translate" in err


# -- pair scores of a trained run ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """300 steps on numbers of 1-2 digits (about 12 s on one thread): enough to translate them."""
    return testing.train("translate", tmp_path_factory.mktemp("translate-trained"), steps=300, overrides={
        **NO_DICT, "backbone.preset": "transformer-tiny", "data.max_digits": 2, "data.long_digits": [3, 3],
        "data.vocab_size": 300, "data.val_size": 40, "data.test_size": 40, "data.batch_size": 32,
        "data.eval_batch_size": 64, "optim.lr": 3e-3, "optim.warmup_steps": 20, "trainer.limit_val_batches": 1.0,
        "trainer.limit_test_batches": 1.0, "run.threads": 1})


def test_score_is_the_log_likelihood_and_ranks_the_right_translation_first(trained_run, tmp_path, capsys):
    """`suite predict RUN --score PAIRS`: log p(output | input) of each pair, equal to the sum of the
    decoder's step-by-step log-probabilities (read through the key-value cache, another path than the
    score's one teacher-forced pass); the right German outscores corrupted ones."""
    import torch

    from suite.runs import load_run
    from suite.tasks.seq2seq import Reader

    numbers = [n for n in range(1, 100) if td.number_split(n, 10.0) == "train"][::9]  # numbers it trained on
    assert len(numbers) >= 8
    rows = []
    for n in numbers:
        right = num2words(n, lang="de")
        rows += [(num2words(n), right), (num2words(n), num2words(n + 1, lang="de")),
                 (num2words(n), right[1:] + right[0]), (num2words(n), right + "zig")]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    code, out, err = suite_main(capsys, "predict", trained_run, "--score", pairs)
    assert code == 0, err
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert [(s, t) for s, t, _ in lines] == rows
    scores = [float(v) for *_, v in lines]
    for i in range(0, len(scores), 4):
        assert scores[i] > max(scores[i + 1: i + 4]), rows[i: i + 4]
    task, _, tok, module = load_run(trained_run, suite.get_registry())
    module.eval()
    with torch.no_grad():
        for (source, target), value in zip(rows[:8], scores[:8]):
            batch = task.collate([task.pair_sample(tok, source, target)])
            reader, total = Reader(module, batch), 0.0
            for t in range(batch["inputs"].shape[1]):
                total += float(reader.step(batch["inputs"][:, : t + 1])[0, batch["targets"][0, t]])
            assert abs(total - value) < 1e-4, (source, target)


def test_a_trained_run_translates_and_its_beam_agrees_with_greedy(trained_run, capsys):
    for n in [n for n in range(20, 100) if td.number_split(n, 10.0) == "train"][:3]:
        outs = {beam: suite_main(capsys, "predict", trained_run, num2words(n), "--beam", beam) for beam in (1, 4)}
        assert all(code == 0 for code, _, _ in outs.values())
        assert outs[4][1].strip() == outs[1][1].strip() == num2words(n, lang="de")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the pairs file"),
    ("one\teins\ntwo\tzwei\tdrei\n", "pairs.tsv:2: a pair is input<TAB>output, this line has 3 field(s)"),
    ("\n\n", "pairs.tsv: no pairs in the file"),
])
def test_score_of_a_bad_pairs_file_is_one_line(trained_run, tmp_path, capsys, content, message):
    pairs = tmp_path / "pairs.tsv"
    if content is not None:
        pairs.write_text(content)
    code, out, err = suite_main(capsys, "predict", trained_run, "--score", pairs)
    assert code == 2 and not out and message in err and len(err.strip().splitlines()) == 1, err
