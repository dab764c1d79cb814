"""`suite transfer` on a tiny matrix: the report agrees with results.json; an interrupted matrix
resumes; every shipped profile dry-runs to the counts its comment states; bad input is one line."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from suite import transfer
from conftest import SUITE, run_suite, suite_main
from test_example_plugin import installed  # noqa: F401  (the example plugin gives a second cheap task)

MATRIX = ["transfer", "--sources", "palindrome", "--targets", "arithmetic", "--seeds", "0,1", "--lrs", "0.001,0.003",
          "--target-steps", 6, "--source-steps", 6, "--no-progress", "--executor", "local"]


def cells(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}


@pytest.fixture(scope="module")
def finished(installed, tmp_path_factory):
    """The matrix killed (-9) once two cells are done, then finished by the same command: the other
    tests read what the resumed matrix wrote. Returns (out, the rerun's stdout, the cells done before the kill)."""
    out = tmp_path_factory.mktemp("transfer")
    proc = subprocess.Popen([SUITE, *map(str, MATRIX), "--out", str(out)], env={**os.environ, **installed},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(cells(out)) < 2 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = cells(out)
    rerun = run_suite(*MATRIX, "--out", out, env=installed)
    return out, rerun.stdout, before


def test_the_matrix_writes_the_four_files(finished):
    out, stdout, _ = finished
    for name in ("results.json", "report.md", "heatmap.png", "curves.png", "experiment.yaml"):
        assert (out / name).is_file(), name
    assert "8 runs" in stdout  # (scratch + palindrome/full) x 2 lrs x 2 seeds
    # the source is trained once per seed and reused by both learning rates
    assert sorted(p.name for p in (out / "sources" / "palindrome").iterdir()) == \
        ["palindrome-tiny-6steps-s0", "palindrome-tiny-6steps-s1"]


def test_report_numbers_agree_with_the_individual_runs(finished):
    out, _, _ = finished
    data = json.loads((out / "results.json").read_text())
    runs = data["runs"]
    assert len(runs) == 8
    report = (out / "report.md").read_text()
    assert "Higher is better" in report
    for arm, row in data["summary"]["arithmetic"].items():
        # the arm's best lr is the one with the best mean validation score over seeds
        by_lr = {}
        for r in runs:
            if r["arm"] == arm:
                by_lr.setdefault(r["lr"], []).append(r)
        best = max(by_lr, key=lambda lr: sum(r["val"] for r in by_lr[lr]) / len(by_lr[lr]))
        assert row["best_lr"] == best
        tests = sorted((r["seed"], r["test"]) for r in by_lr[best])
        mean = sum(t for _, t in tests) / len(tests)
        assert row["mean"] == pytest.approx(mean)
        line = next(l for l in report.splitlines() if l.startswith(f"| {arm} |"))
        assert f"| {mean:.4f} ± " in line and re.search(rf"\| {best:g}( ⚠)? \|", line)
        # the best lr is flagged when it sits at either end of the sweep (here: always, two rates)
        assert row["lr_at_edge"] and "⚠" in line
        # each run's test score is what its own run directory recorded
        for r in by_lr[best]:
            m = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
            assert m["splits"]["test"]["exact_match"] == pytest.approx(r["test"])
    gain_row = data["summary"]["arithmetic"]["palindrome/full"]
    assert gain_row["gain"] == pytest.approx(gain_row["mean"] - data["summary"]["arithmetic"]["scratch"]["mean"])


def test_killing_and_rerunning_skips_finished_cells(finished):
    out, stdout, before = finished
    assert 2 <= len(before) < 8
    assert f"{len(before)} already finished, {8 - len(before)} to go" in stdout
    for name, mtime in before.items():
        assert cells(out)[name] == mtime  # not redone
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 8


def test_report_shows_every_measure(finished):
    out, _, _ = finished
    data = json.loads((out / "results.json").read_text())
    row = data["summary"]["arithmetic"]["palindrome/full"]
    for key in ("effective_data", "effective_data_end", "auc_gain", "gain_p", "gain_p_holm", "val_best", "lr_at_edge"):
        assert key in row, key
    report = (out / "report.md").read_text()
    assert "eff. data first" in report and "AUC gain" in report and "p (Holm)" in report
    assert "Holm" in report and "Welch" in report and "*last* checkpoint" in report
    line = next(l for l in report.splitlines() if l.startswith("| palindrome/full |"))
    assert transfer.fmt_effective(row["effective_data"]) in line


def _stated_counts(profile: str) -> tuple[int, int]:
    """The run counts a profile's leading comment states: "N target runs" and "M source runs"."""
    comment = " ".join(l.lstrip("# ") for l in transfer.profile_path(profile).read_text().splitlines()
                       if l.startswith("#"))
    target = re.search(r"([\d,]+) target runs", comment)
    source = re.search(r"([\d,]+) source runs", comment)
    assert target and source, f"configs/transfer/{profile}.yaml must state its target and source run counts"
    return int(target.group(1).replace(",", "")), int(source.group(1).replace(",", ""))


@pytest.mark.parametrize("profile", transfer.profiles())
def test_every_profile_dry_runs_to_the_counts_its_comment_states(profile, capsys, tmp_path):
    code, out, err = suite_main(capsys, "transfer", "--profile", profile, "--dry-run", "--calibrate-steps", "0",
                                "--out", tmp_path / profile)
    assert code == 0, err
    totals = re.search(r"([\d,]+) runs +([\d,]+) steps +\(([\d,]+) target runs \+ ([\d,]+) source runs\)", out)
    assert totals, out[-2000:]
    runs, steps, target, source = (int(g.replace(",", "")) for g in totals.groups())
    assert (target, source) == _stated_counts(profile)
    listed = [l for l in out.splitlines() if l.startswith(("  - source ", "  - target "))]
    assert len(listed) == runs == target + source
    # counts by kind add up to the totals
    kinds = re.findall(r"^  (source pretraining|scratch|(?:fine-tune|random control) \([\w+]+\)) +([\d,]+) runs +([\d,]+) steps",
                       out, re.M)
    assert sum(int(r.replace(",", "")) for _, r, _ in kinds) == runs
    assert sum(int(s.replace(",", "")) for _, _, s in kinds) == steps
    assert not (tmp_path / profile / "cells").exists()  # a dry run trains nothing


def test_full_profile_leaves_out_sources_that_need_an_argument(capsys, tmp_path):
    code, out, _ = suite_main(capsys, "transfer", "--profile", "full", "--dry-run", "--calibrate-steps", "0", "--out", tmp_path)
    assert code == 0
    assert "left out of 'all': hf" in out
    assert "<- hf" not in out and "<- minilm/fpt" in out


def test_dry_run_estimates_the_wall_time_from_a_calibration(capsys, tmp_path, monkeypatch):
    from suite.registry import get_registry

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    overrides = {"sources": "vision", "targets": "arithmetic", "seeds": "0,1", "lrs": "0.001,0.003",
                 "target_steps": 40, "source_steps": 60, "evals": 2}
    exp = transfer.load_experiment("quick", None, overrides)
    figures = transfer.run_experiment(exp, get_registry(), tmp_path, dry=True, calibrate_steps=3, recalibrate=True)
    out = capsys.readouterr().out
    assert figures["target_runs"] == 8 and figures["source_runs"] == 2
    assert "(8 target runs + 2 source runs)" in out and "calibrating arithmetic" in out and "calibrating vision" in out
    stored = json.loads(transfer.estimate.cache_path().read_text())
    assert len(stored) == 2
    cal = {(c["task"], c["arch"]): c for c in stored.values()}
    for c in cal.values():
        assert c["step"] > 0 and c["check"] >= 0 and c["overhead"] >= 0 and c["data"] >= 0
    # the estimate is the calibration applied to the plan: 8 target runs of 40 steps and 2 checks,
    # 2 source runs of 60 steps, one data build per (task, seed), and this process's start-up
    a, v = cal[("arithmetic", "tiny")], cal[("vision", "tiny")]
    est = figures["estimate"]
    expected = 8 * transfer.estimate.run_seconds(a, 40, 2) + 2 * transfer.estimate.run_seconds(v, 60, 2) \
        + 2 * a["data"] + 2 * v["data"] + est["startup"]
    assert est["total"] == pytest.approx(expected) and est["startup"] > 0
    assert f"one run after another (--executor local): {transfer.estimate.hms(expected)}" in out
    assert not (tmp_path / "cells").exists() and not (tmp_path / "runs").exists()
    # a second dry run (without --calibrate) reuses the measurements
    again = transfer.run_experiment(exp, get_registry(), tmp_path, dry=True, calibrate_steps=3)
    assert "calibrating" not in capsys.readouterr().out
    assert again["estimate"]["total"] - again["estimate"]["startup"] == pytest.approx(expected - est["startup"])


@pytest.mark.parametrize("args, message", [
    (["--lrs", "0.001,abc"], "lrs: 'abc' is not a number"),
    (["--seeds", "0,0"], "seeds: [0, 0] lists a value twice"),
    (["--target-steps", "5", "--evals", "6"], "evals: 6 validation checks do not fit in 5 target steps"),
    (["--executor", "dask"], "executor must be one of auto, local, ray, not 'dask'"),
    (["--measure", "loss"], "measure must be one of gain, effective-data, auc, not 'loss'"),
    (["--resources.gpus", "1.5"], "resources.gpus: a fraction must be below 1"),
    (["--resources.cpus", "x"], "resources.cpus: 'x' is not a number"),
    (["--calibrate-steps", "-1", "--dry-run"], "--calibrate-steps must be 0 (no estimate) or a positive integer"),
    (["--calibrate"], "--calibrate measures for the estimate of --dry-run: give both"),
    (["--profile", "huge"], "unknown transfer profile 'huge'; known: " + ", ".join(transfer.profiles())),
    (["--sources", "nope", "--targets", "arithmetic"], "unknown source 'nope'"),
])
def test_bad_input_is_one_clear_line(args, message, capsys, tmp_path):
    code, out, err = suite_main(capsys, "transfer", *args, "--out", tmp_path, "--no-progress")
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cells").exists()


def test_unknown_key_in_an_experiment_file_is_named(capsys, tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("target_step: 10\n")
    code, _, err = suite_main(capsys, "transfer", "--config", bad, "--dry-run", "--calibrate-steps", "0")
    assert code == 2 and f"{bad}: unknown experiment key 'target_step'; did you mean 'target_steps'?" in err


def test_an_output_directory_holds_one_experiment(finished, installed):
    out, _, _ = finished
    longer = [7 if a == 6 else a for a in MATRIX]
    proc = run_suite(*longer, "--out", out, env=installed, check=False)
    assert proc.returncode == 2 and "holds a matrix with source_steps 6, not 7" in proc.stderr, proc.stderr


def test_a_target_can_have_its_own_budget(capsys, tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("steps_by_target: {vision: 40}\n")
    args = ["transfer", "--config", exp, "--sources", "arithmetic", "--targets", "arithmetic,vision", "--seeds", "0",
            "--lrs", "0.001", "--target-steps", "20", "--source-steps", "30", "--dry-run", "--calibrate-steps", "0",
            "--out", tmp_path / "out"]
    code, out, err = suite_main(capsys, *args)
    assert code == 0, err
    # arithmetic: scratch only (no self-transfer), 20 steps; vision: scratch + arithmetic/full, 40 steps each
    assert re.search(r"4 runs +130 steps +\(3 target runs \+ 1 source runs\)", out), out
    assert re.search(r"- target  vision .* 40 steps", out) and re.search(r"- target  arithmetic .* 20 steps", out)
    exp.write_text("steps_by_target: {chess: 40}\n")
    code, _, err = suite_main(capsys, *args)
    assert code == 2 and "steps_by_target: 'chess' is not a target of this experiment (arithmetic, vision)" in err


def test_train_sizes_plan_every_arm_at_every_size_for_as_long_as_its_size_asks(capsys, tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("size_steps: {epochs: 2, min: 5}\nrandom_controls: true\nlrs_by_freeze: {fpt: [0.01]}\n")
    code, out, err = suite_main(capsys, "transfer", "--config", exp, "--sources", "arithmetic,minilm", "--targets", "vision",
                                "--freeze", "none,fpt", "--seeds", "0,1", "--lrs", "0.001,0.003", "--target-steps", "20",
                                "--source-steps", "30", "--train-sizes", "400,100", "--scratch-sizes", "1600",
                                "--dry-run", "--calibrate-steps", "0", "--out", tmp_path / "out")
    assert code == 0, err
    listed = re.findall(r"- target  vision +<- (.+?) +lr (\S+) +seed (\d) +n (\d+) +(\d+) steps", out)
    runs = {(arm, float(lr), int(seed), int(n)): int(steps) for arm, lr, seed, n, steps in listed}
    assert len(listed) == len(runs)  # no run twice
    # vision trains at batch 64: 2 epochs of 100 samples is 4 steps (at least 5), of 400 is 13, of 1600 is 50 (at most 20)
    steps = {100: 5, 400: 13, 1600: 20}
    arms = {"scratch": [0.001, 0.003], "scratch (source:minilm)": [0.001, 0.003], "scratch (source:minilm)/fpt": [0.01],
            "arithmetic/full": [0.001, 0.003], "arithmetic/fpt": [0.01], "minilm/full": [0.001, 0.003], "minilm/fpt": [0.01]}
    want = {(arm, lr, seed, n): steps[n] for arm, lrs in arms.items() for lr in lrs for seed in (0, 1) for n in (100, 400)}
    # scratch_sizes: the scratch arms (fully trained) alone, for scratch's score against data
    want |= {(arm, lr, seed, 1600): 20 for arm in ("scratch", "scratch (source:minilm)") for lr in (0.001, 0.003) for seed in (0, 1)}
    assert runs == want
    assert re.search(r"random control \(fpt\) +4 runs +36 steps", out), out
    assert f"{len(want)} target runs + 2 source runs" in out
    # a cell's id carries its size, so the sizes of one arm are different cells
    cell = transfer.Cell("vision", "minilm", "fpt", 0.01, 0, "source:minilm", 100, 5)
    assert cell.id == "vision__minilm-fpt__lr0.01__s0__n100" and cell.panel == "vision (n=100)"
    assert transfer.Cell("vision", "scratch", "full", 0.01, 0, "tiny").id == "vision__scratch__lr0.01__s0"


def test_adaptation_methods_are_arms_with_their_own_sweeps_and_controls(capsys, tmp_path):
    """--adapt METHOD,...: one arm per source and method, each at its own learning rates (lrs_by_adapt),
    random controls for the methods listed, and each run configured with its method."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("random_controls: [fpt, lora]\nlrs_by_adapt: {lora: [0.01], fpt: [0.02, 0.03]}\n")
    args = ["transfer", "--config", exp, "--sources", "arithmetic,minilm", "--targets", "vision", "--adapt",
            "full,fpt,lora,bitfit,orca,orca+lora", "--seeds", "0,1", "--lrs", "0.001", "--target-steps", "20",
            "--source-steps", "30", "--dry-run", "--calibrate-steps", "0", "--out", tmp_path / "out"]
    code, out, err = suite_main(capsys, *args)
    assert code == 0, err
    listed = re.findall(r"- target  vision +<- (.+?) +lr (\S+) +seed (\d)", out)
    got = {(arm, float(lr), int(seed)) for arm, lr, seed in listed}
    sweeps = {"full": [0.001], "fpt": [0.02, 0.03], "lora": [0.01], "bitfit": [0.001], "orca": [0.001], "orca+lora": [0.001]}
    arms = {"scratch": [0.001], "scratch (source:minilm)": [0.001], "scratch (source:minilm)/fpt": sweeps["fpt"],
            "scratch (source:minilm)/lora": sweeps["lora"],
            **{f"{source}/{m}": lrs for source in ("arithmetic", "minilm") for m, lrs in sweeps.items()}}
    assert len(listed) == len(got) and got == {(arm, lr, seed) for arm, lrs in arms.items() for lr in lrs for seed in (0, 1)}
    assert re.search(r"fine-tune \(orca\+lora\) +4 runs +80 steps", out) and re.search(r"random control \(lora\) +2 runs", out), out
    # what each run is told: its method and, from a source, init.from
    from suite.registry import get_registry

    registry = get_registry()
    planned = transfer.load_experiment(None, str(exp), {"sources": "arithmetic", "targets": "vision", "adapt": "fpt,lora,orca",
                                                        "seeds": "0", "lrs": "0.001", "preset": "tiny", "target_steps": 20,
                                                        "source_steps": 30})
    planned = transfer.expand(planned, registry)
    runner = transfer.Runner(planned, registry, tmp_path / "out")
    for cell in transfer.plan(planned, registry):
        cfg = runner.cell_config(cell)
        assert cfg["adapt"]["method"] == cell.adapt and (cfg["init"]["from"] is None) == (cell.source == "scratch")
    # the older names: --freeze none,fpt is --adapt full,fpt, lrs_by_freeze is lrs_by_adapt
    exp.write_text("lrs_by_freeze: {fpt: [0.02]}\n")
    code, out, err = suite_main(capsys, *args[:7], "--freeze", "none,fpt", *args[9:])
    assert code == 0, err
    assert {a for a, _, _ in re.findall(r"- target  vision +<- (.+?) +lr (\S+) +seed (\d)", out)} == \
        {"scratch", "scratch (source:minilm)", "arithmetic/full", "arithmetic/fpt", "minilm/full", "minilm/fpt"}
    assert re.search(r"minilm/fpt +lr 0.02 ", out)
    for bad, message in ((["--adapt", "full,half"], "--adapt must be one of full, frozen, fpt, lora, bitfit, orca or orca+METHOD"),
                         (["--freeze", "none,half"], "freeze mode must be one of none, backbone, fpt, not 'half'")):
        code, _, err = suite_main(capsys, *args[:7], *bad, *args[9:])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    exp.write_text("random_controls: [orca]\n")
    code, _, err = suite_main(capsys, *args)
    assert code == 2 and "random_controls: 'orca' is not a method of adapt" in err


def test_a_run_on_a_train_limit_sees_that_many_samples_every_epoch():
    """data.train_limit keeps n places of an indexed stream, the same every epoch, and makes a pool of n
    samples of a generated one (drawn once each), so every arm at one seed trains on the same data."""
    import torch

    from suite import Limited, Stream

    class Indexed(Stream):
        def size(self):
            return 1000

        def samples(self, indices, generator):
            return indices.tolist()

    class Drawn(Stream):
        indexed = False

        def size(self):
            return 10 ** 6

        def samples(self, indices, generator):
            return torch.randint(10 ** 9, (len(indices),), generator=generator).tolist()

    for stream in (Indexed(0), Drawn(0)):
        seen = []
        limited = Limited(stream, 50, seed=3).configure(10)
        for epoch in range(3):
            limited.epoch = epoch
            seen.append(sorted(x for x in limited))
        assert len(set(seen[0])) == 50 and seen[0] == seen[1] == seen[2]
        again = Limited(type(stream)(0), 50, seed=3).configure(10)
        assert sorted(again) == seen[0]  # the same pool for the same seed
        other = Limited(type(stream)(0), 50, seed=4).configure(10)
        assert sorted(other) != seen[0]


def test_references_are_read_from_measured_runs(finished, installed):
    """--reference TASK=RUN_DIR: the report reads the run's test score; each task source is set against
    its task's reference; a directory that is not a finished run is said to be one."""
    out, _, _ = finished
    source = out / "sources" / "palindrome" / "palindrome-tiny-6steps-s0"
    m = json.loads((source / "metrics.json").read_text())
    score = m["splits"]["test"][m["primary"]]
    proc = run_suite(*MATRIX, "--out", out, "--reference", f"palindrome={source},arithmetic={out / 'nowhere'}", env=installed)
    report = (out / "report.md").read_text()
    rows = [l for l in report.splitlines() if l.startswith("| palindrome-tiny-6steps-s")]
    assert len(rows) == 2, report
    assert f"| palindrome-tiny-6steps-s0 | {m['primary']} | {score:.4f} | 100% | {score:.4f} (the run {source}) |" in rows
    assert f"{out / 'nowhere'} is not a finished run" in report  # arithmetic's scratch arm: no reference, and why
    assert "0 to go" in proc.stdout  # nothing retrained: references only change the report


def test_the_default_executor_uses_ray_when_the_machine_holds_two_runs(monkeypatch):
    import importlib.util

    from suite.registry import get_registry

    exp = transfer.load_experiment("quick", None, {})
    assert exp["executor"] == "auto"
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert transfer.executor_of(exp)[0] == ("ray" if importlib.util.find_spec("ray") else "local")
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert transfer.executor_of(exp) == ("local", "auto: one run at a time fits 1 cores")
    with monkeypatch.context() as m:
        m.setattr(importlib.util, "find_spec", lambda name: None)
        assert transfer.executor_of(exp) == ("local", "auto: Ray is not installed")
    assert transfer.executor_of({**exp, "executor": "local"}) == ("local", "as asked")
    # a Ray run takes as many torch threads as it has CPUs, not run.threads "auto" (which counts idle cores
    # and gave two runs sharing two cores two threads each)
    runner = transfer.Runner(exp, get_registry(), Path("out"), threads=1)
    cell = transfer.Cell("vision", "scratch", "full", 1e-3, 0, "tiny")
    assert runner.cell_config(cell)["run"]["threads"] == 1
    assert transfer.Runner(exp, get_registry(), Path("out")).cell_config(cell)["run"]["threads"] in (None, "auto")
