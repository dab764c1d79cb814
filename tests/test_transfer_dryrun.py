"""`suite transfer --dry-run` trains nothing: its estimate comes from calibrations kept in the user's
cache (exact settings, else the same task and architecture as an approximation), and only
`--calibrate` measures. Every training call here raises; measurements are written by hand."""
import json

import pytest

from suite import transfer
from suite.registry import get_registry
from suite.transfer import estimate
from conftest import suite_main

OPTIONS = ["--sources", "vision", "--targets", "arithmetic", "--seeds", "0,1", "--lrs", "0.001,0.003",
           "--target-steps", "40", "--source-steps", "60", "--evals", "2"]
OVERRIDES = {"sources": "vision", "targets": "arithmetic", "seeds": "0,1", "lrs": "0.001,0.003",
             "target_steps": 40, "source_steps": 60, "evals": 2}
COSTS = {("arithmetic", "tiny"): {"step": 0.01, "check": 0.5, "overhead": 2.0, "data": 3.0},
         ("vision", "tiny"): {"step": 0.02, "check": 0.25, "overhead": 1.0, "data": 7.0}}


@pytest.fixture(autouse=True)
def nothing_trains(monkeypatch, tmp_path):
    """An empty user cache of this test, and no training."""
    def train(*args, **kwargs):
        raise AssertionError("a dry run trained")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(transfer.Runner, "train", train)


def record(task: str, arch: str, **extra) -> dict:
    return {"task": task, "arch": arch, "steps": [20, 60], **COSTS[(task, arch)], "measured": "2026-01-01 00:00",
            "load": 1.0, "cores": 2, **extra}


def keys(exp: dict, tmp_path) -> dict:
    """The calibration key of each (task, arch) of the small experiment, at the default 20 steps."""
    exp = transfer.expand(exp, get_registry())
    configs = estimate.calibration_configs(transfer.Runner(exp, get_registry(), tmp_path), list(COSTS), 20)
    return {pair: estimate.calibration_key(cfg, 20) for pair, cfg in configs.items()}


def expected_seconds(a: dict, v: dict) -> float:
    """8 arithmetic target runs of 40 steps and 2 checks, 2 vision source runs of 60, one data build per (task, seed)."""
    return 8 * (a["overhead"] + 40 * a["step"] + 2 * a["check"]) + 2 * (v["overhead"] + 60 * v["step"] + 2 * v["check"]) \
        + 2 * a["data"] + 2 * v["data"]


@pytest.mark.parametrize("profile", transfer.profiles())
def test_a_dry_run_without_calibration_trains_nothing(profile, capsys, tmp_path):
    code, out, err = suite_main(capsys, "transfer", "--profile", profile, "--dry-run", "--out", tmp_path / "out")
    assert code == 0, err
    assert "(task, architecture) pairs in about " in out and "estimated wall time: not calibrated" in out
    assert f"not calibrated: `suite transfer --profile {profile} --dry-run --calibrate` measures it (about " in out
    assert "runs by kind:" in out and " target runs + " in out
    assert not (tmp_path / "out").exists() and not estimate.cache_path().exists()


@pytest.mark.parametrize("where", ["user cache", "output directory"])
def test_a_stored_calibration_gives_the_estimate(where, capsys, tmp_path):
    exp = transfer.load_experiment("quick", None, OVERRIDES)
    path = estimate.cache_path() if where == "user cache" else tmp_path / "out" / "calibration.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({key: record(*pair) for pair, key in keys(exp, tmp_path).items()}))
    figures = transfer.run_experiment(exp, get_registry(), tmp_path / "out", dry=True)
    out = capsys.readouterr().out
    est = figures["estimate"]
    expected = expected_seconds(COSTS[("arithmetic", "tiny")], COSTS[("vision", "tiny")])
    assert est["total"] - est["startup"] == pytest.approx(expected) and not est["partial"]
    assert f"(--executor local): {estimate.hms(expected + est['startup'])}\n" in out
    assert "approximate" not in out and "not calibrated" not in out
    assert "not included: generating a data set that is not cached yet" in out and "the report and its plots" in out


def test_other_settings_are_an_approximation_and_a_missing_pair_makes_it_partial(capsys, tmp_path):
    exp = transfer.load_experiment("quick", None, OVERRIDES)
    estimate.cache_path().parent.mkdir(parents=True)
    estimate.cache_path().write_text(json.dumps({"measured-with-batch-64": record("arithmetic", "tiny")}))
    figures = transfer.run_experiment(exp, get_registry(), tmp_path / "out", dry=True)
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("  arithmetic "))
    assert "approximate: measured with other settings" in line
    assert "  vision         tiny             not calibrated: `suite transfer --profile quick --dry-run --calibrate`" in out
    est = figures["estimate"]
    a = COSTS[("arithmetic", "tiny")]
    # the 8 arithmetic runs and arithmetic's data builds; the 2 vision source runs are left out
    assert est["total"] - est["startup"] == pytest.approx(8 * (a["overhead"] + 40 * a["step"] + 2 * a["check"]) + 2 * a["data"])
    assert est["partial"] and est["left_out"] == 2 and figures["not_calibrated"] == [("vision", "tiny")]
    assert "partial: leaves out 2 of the 10 runs to do" in out and "approximate for 1 (task, architecture) pairs" in out
    assert est["approximate"] == [("arithmetic", "tiny")]


def test_calibrate_measures_afresh_and_recalibrate_still_works(capsys, tmp_path, monkeypatch):
    measured = []

    def measure(runner, task, arch, steps, root):
        measured.append((task, arch))
        return record(task, arch)

    monkeypatch.setattr(estimate, "measure", measure)
    # the dry run names its own command, with --calibrate, for what is not calibrated
    code, out, _ = suite_main(capsys, "transfer", *OPTIONS, "--dry-run", "--out", tmp_path / "out")
    assert code == 0 and f"`suite transfer --profile quick {' '.join(OPTIONS)} --dry-run --calibrate` measures it" in out
    code, out, err = suite_main(capsys, "transfer", *OPTIONS, "--dry-run", "--calibrate", "--out", tmp_path / "out")
    assert code == 0, err
    assert sorted(measured) == sorted(COSTS) and "calibrating vision (tiny)" in out and not err
    stored = json.loads(estimate.cache_path().read_text())
    assert sorted((c["task"], c["arch"]) for c in stored.values()) == sorted(COSTS)
    # the next dry run uses them as they are; --recalibrate measures again, with a warning
    code, out, _ = suite_main(capsys, "transfer", *OPTIONS, "--dry-run", "--out", tmp_path / "out")
    assert code == 0 and len(measured) == 2 and "calibrating" not in out and "approximate" not in out
    code, out, err = suite_main(capsys, "transfer", *OPTIONS, "--dry-run", "--recalibrate", "--out", tmp_path / "out")
    assert code == 0 and len(measured) == 4 and "--recalibrate is deprecated: use --calibrate" in err


def test_no_estimate_with_zero_calibration_steps(capsys, tmp_path):
    code, out, _ = suite_main(capsys, "transfer", *OPTIONS, "--dry-run", "--calibrate", "--calibrate-steps", "0",
                              "--out", tmp_path / "out")
    assert code == 0 and "estimated wall time: not measured (--calibrate-steps 0)" in out
    assert not estimate.cache_path().exists()
