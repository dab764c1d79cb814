"""Shared fixtures: the real `suite` command, run in a subprocess, and one small trained run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = str(Path(sys.executable).parent / "suite")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Caches (audio features, locks) go to a directory of this test session, not ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
TINY = ["--backbone.preset", "tiny", "--no-progress"]


def run_suite(*args, cwd=None, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    """Run the installed `suite` console script; fail with its output when check and it fails."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([SUITE, *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"suite {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def suite_main(capsys, *args) -> tuple[int, str, str]:
    """The same CLI entry point in this process (for fast paths and errors): (exit status, stdout, stderr)."""
    from suite import cli

    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_dir_from(output: str) -> Path:
    lines = [l for l in output.splitlines() if l.startswith("run directory: ")]
    assert lines, output
    return Path(lines[-1].split(": ", 1)[1])


def metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


@pytest.fixture(scope="session")
def arith_run(tmp_path_factory) -> Path:
    """A 30-step tiny arithmetic run shared by the eval / predict / resume / init-from tests."""
    root = tmp_path_factory.mktemp("runs")
    proc = run_suite("train", "--task", "arithmetic", *TINY, "--trainer.max_steps", 30,
                     "--trainer.val_check_interval", 15, "--data.val_size", 64, "--data.test_size", 64,
                     "--run.root", root)
    return run_dir_from(proc.stdout)
