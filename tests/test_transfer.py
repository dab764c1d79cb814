"""`suite transfer` on a tiny matrix: the report agrees with results.json; an interrupted matrix resumes."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from suite import transfer
from conftest import SUITE, run_suite
from test_example_plugin import installed  # noqa: F401  (the example plugin gives a second cheap task)

MATRIX = ["transfer", "--sources", "palindrome", "--targets", "arithmetic", "--seeds", "0,1", "--lrs", "0.001,0.003",
          "--target-steps", 6, "--source-steps", 6, "--no-progress"]


@pytest.fixture(scope="module")
def finished(installed, tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    proc = run_suite(*MATRIX, "--out", out, env=installed)
    return out, proc.stdout


def test_the_matrix_writes_the_four_files(finished):
    out, stdout = finished
    for name in ("results.json", "report.md", "heatmap.png", "curves.png", "experiment.yaml"):
        assert (out / name).is_file(), name
    assert "8 runs" in stdout  # (scratch + palindrome/none) x 2 lrs x 2 seeds
    # the source is trained once per seed and reused by both learning rates
    assert sorted(p.name for p in (out / "sources" / "palindrome").iterdir()) == \
        ["palindrome-tiny-6steps-s0", "palindrome-tiny-6steps-s1"]


def test_report_numbers_agree_with_the_individual_runs(finished):
    out, _ = finished
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
        assert f"| {mean:.4f} |" in line and f"| {best:g} |" in line
        # each run's test score is what its own run directory recorded
        for r in by_lr[best]:
            m = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
            assert m["splits"]["test"]["exact_match"] == pytest.approx(r["test"])
    gain_row = data["summary"]["arithmetic"]["palindrome/none"]
    assert gain_row["gain"] == pytest.approx(gain_row["mean"] - data["summary"]["arithmetic"]["scratch"]["mean"])


def test_killing_and_rerunning_skips_finished_cells(installed, tmp_path):
    out = tmp_path / "matrix"
    proc = subprocess.Popen([SUITE, *map(str, MATRIX), "--out", str(out)], env={**os.environ, **installed},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "cells").glob("*.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert 2 <= len(finished) < 8
    rerun = run_suite(*MATRIX, "--out", out, env=installed)
    assert f"{len(finished)} already finished, {8 - len(finished)} to go" in rerun.stdout
    for name, mtime in finished.items():
        assert (out / "cells" / name).stat().st_mtime_ns == mtime  # not redone
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 8


def test_statistics():
    mean, ci = transfer.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and ci == pytest.approx(4.303 * 1.0 / 3 ** 0.5)
    gain, ci = transfer.welch([2.0, 2.1, 1.9], [1.0, 1.1, 0.9])
    assert gain == pytest.approx(1.0) and 0 < ci < 1.0
    # the heatmap's colour: the gain in units of its interval, clipped, whatever the metric's scale
    assert transfer.noise_units(0.5, 1.0) == 0.5 and transfer.noise_units(-30.0, 1.0) == -2.0
    assert transfer.noise_units(0.1, float("nan")) == 0.0


def test_unknown_source_is_a_clear_error(tmp_path):
    proc = run_suite("transfer", "--sources", "nope", "--targets", "arithmetic", "--out", tmp_path, check=False)
    assert proc.returncode == 2 and "unknown source 'nope'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
