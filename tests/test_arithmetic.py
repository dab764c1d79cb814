import itertools

import pytest
import torch

import suite
from suite import testing
from suite.plugins import arithmetic as ar
from suite.registry import get_registry
from suite import config


def data(**overrides):
    reg = get_registry()
    task = reg.task("arithmetic")
    cfg = config.resolve(task, overrides={"data.val_size": 200, "data.test_size": 200, **overrides},
                         presets=reg.all_presets())
    tok = task.build_tokenizer(cfg)
    return tok, task.build_data(tok, cfg), cfg


def texts(tok, ds):
    return {tok.decode(p) for p, *_ in ds}


def test_held_out_problems_never_appear_in_training():
    tok, splits, _ = data()
    train = texts(tok, itertools.islice(splits["train"], 20000))
    for split in ("val", "test", "test_add3"):
        assert not train & texts(tok, splits[split]), split
    assert not texts(tok, splits["val"]) & texts(tok, splits["test"])


def test_test_long_has_longer_operands_than_training():
    tok, splits, cfg = data()
    for problem in texts(tok, splits["test_long"]):
        a, b = problem.rstrip("=").replace("*", "+").replace("-", "+").split("+")
        assert len(a) >= 4 and len(b) >= 4


def test_answers_are_reversed_and_end_with_eos():
    tok = ar.make_tokenizer()
    prompt, answer = ar.encode(tok, "12+9=", "21", reverse=True)
    assert tok.decode(prompt) == "12+9=" and tok.decode(answer) == "12" and answer[-1] == tok.EOS


@pytest.mark.parametrize("problem, answer, written", [
    ("12-345=", "-333", "-333"), ("99+1=", "100", "+001"), ("5-5=", "0", "+0"), ("120-20=", "100", "+001")])
def test_sign_first_answers_round_trip(problem, answer, written):
    """sign_first: the sign, then the digits least significant first; read_answer gives back the
    plain answer."""
    tok = ar.make_tokenizer()
    prompt, ids, numbers = ar.encode(tok, problem, answer, True, ar.scale_of(12, 0), 64, sign_first=True)
    assert tok.decode(ids[:-1]) == written and ar.read_answer(written, True, True) == answer
    # "=" predicts the sign (number 0 of the answer region); the sign token predicts the units
    assert numbers[len(prompt) - 1] == 2 * 64 and numbers[len(prompt)] == 2 * 64 + 1


@pytest.mark.parametrize("problem, answer, written", [
    ("57+68=", "125", "5c2c1"), ("999+1=", "1000", "0c0c0c1"), ("1000-999=", "1", "1c0c0c0n"), ("5-123=", "-118", "8c1n1n-"),
    ("0-0=", "0", "0n")])
def test_carries_write_each_digits_carry_and_round_trip(problem, answer, written):
    """carries: each digit (least significant first, up to the longer operand) then the carry or
    borrow it passes on; a difference is the smaller operand from the larger. The digit and the
    token that predicts it share their significance's number."""
    tok = ar.make_tokenizer(carries=True)
    prompt, ids, numbers = ar.encode(tok, problem, answer, True, ar.scale_of(12, 0), 64, carries=True)
    assert tok.decode(ids[:-1]) == written and ar.read_answer(written, True, False, carries=True) == answer
    assert numbers[len(prompt) - 1:len(prompt) + 3] == [2 * 64 + 1, 2 * 64 + 1, 2 * 64 + 2, 2 * 64 + 2]
    with pytest.raises(suite.SuiteError, match="data.carries"):
        data(**{"data.carries": True, "data.ops": "+*"})


def test_a_run_saved_before_carries_keeps_plain_answers():
    """carries is on by default now; a run saved before the setting loads with that default, and
    its tokenizer (no "c") keeps its answers plain."""
    tok, splits, cfg = data()
    assert cfg["data"]["carries"] and "c" in tok.alphabet
    written = [tok.decode(a[:-1]) for _, a, *_ in splits["test"]]
    assert any("c" in w for w in written) and not any(w[0] in "+-" for w in written)  # the sign (if any) last
    old = ar.make_tokenizer()
    answers = [old.decode(a[:-1]) for _, a, *_ in ar.FixedSet(old, cfg["data"], "test", 50, 2, "+-", (1, 3))]
    assert len(answers) == 50 and all(set(a) <= set("0123456789-") for a in answers)


def test_collate_left_pads_prompts_and_aligns_targets():
    tok = ar.make_tokenizer()
    batch = ar.collate([ar.encode(tok, "1+1=", "2", False), ar.encode(tok, "100+200=", "300", False)])
    P = int(batch["prefix_len"][0])
    assert P == 8 and batch["inputs"].shape == (2, 12)
    assert tok.decode(batch["inputs"][0, :P].tolist()) == "1+1=" and batch["padding"][0, :4].all()
    # the token after the prompt is predicted at position P - 1
    assert batch["targets"][1, P - 1:P + 3].tolist() == tok.encode("300") + [tok.EOS]
    assert (batch["targets"][:, : P - 1] == suite.IGNORE).all()


def test_exact_match_compares_answers_up_to_eos():
    from suite.tasks.generation import _until_eos

    a = torch.tensor([[5, 6, 2, 7, 7], [5, 6, 2, 2, 2]])
    assert torch.equal(_until_eos(a, 2)[0], _until_eos(a, 2)[1])


def test_bad_ops_setting_is_rejected():
    with pytest.raises(suite.SuiteError, match="data.ops"):
        data(**{"data.ops": "/"})


def test_batches_and_tokenizer_keep_the_plugin_contract():
    batches = testing.check_batches("arithmetic", {"data.val_size": 32, "data.test_size": 32})
    assert set(batches) == {"train", "val", "test", "test_add3", "test_long", "test_xlong"}
    assert testing.roundtrip_tokenizer("arithmetic").alphabet == "0123456789+-*=cn"


def test_abacus_positions_number_digits_by_significance():
    tok, R = ar.make_tokenizer(), ar.ABACUS_REGION
    prompt, answer, ids = ar.encode(tok, "12+345=", "753", True, scale=[1, 4, 9, 10, 12], region=R)
    # units 1, tens 4, hundreds 9 in each operand's region; "=" predicts the units; then 4, 9, ...
    assert ids == [4, 1, 0, R + 9, R + 4, R + 1, 2 * R + 1, 2 * R + 4, 2 * R + 9, 2 * R + 10, 2 * R + 12]
    batch = ar.collate([(prompt, answer, ids), ar.encode(tok, "1+1=", "2", True, ar.scale_of(5, 0), R)], room=3)
    T = batch["inputs"].shape[1]
    assert batch["positions"].shape == (2, T + 3)
    # left padding is 0; the shorter problem counts 1, 2, 3 and repeats its last number
    assert batch["positions"][1].tolist() == [0, 0, 0, 1, 0, R + 1, 2 * R + 1, 2 * R + 2, 2 * R + 3, 2 * R + 4] + [2 * R + 5] * 4


def test_abacus_data_trains_on_random_numberings_and_evaluates_on_1_2_3():
    tok, splits, cfg = data(**{"data.position_ids": "abacus", "data.position_spread": 20})
    R = ar.position_settings(cfg["data"])[2]
    units = [ids[p.index(tok.encode("=")[0]) - 1] - R for p, _, ids in itertools.islice(splits["train"], 300)]
    assert len(set(units)) > 5 and min(units) >= 1 and max(units) <= 20  # b's units: random numbers up to the spread
    assert all(ids[len(p) - 2] == R + 1 for p, _, ids in splits["test_xlong"])  # evaluation: units numbered 1
    from suite.module import SuiteModule

    model = SuiteModule(get_registry().task("arithmetic"), tok, cfg).eval()
    with torch.no_grad():
        answer = model.task.predict(model, "123456+654321", {})
    assert isinstance(answer, str) and len(answer) <= 2 * (6 + 6 + 2)  # untrained: any characters, decoded to the end (carries: two tokens a digit)
    with pytest.raises(suite.SuiteError, match="answer digits"):
        model.task.predict(model, "1" * 70 + "*9", {})
    with pytest.raises(suite.SuiteError, match="max_len >= 300"):
        data(**{"data.position_ids": "abacus", "data.position_spread": 99, "backbone.preset": "tiny"})
    splits = data(**{"data.test_lengths": [12], "data.test_size": 20})[1]
    assert {len(p.split("+")[0].split("-")[0]) for p in texts(tok, splits["test_d12"])} == {12}
