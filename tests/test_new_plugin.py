"""`suite new-plugin`: the package it writes installs with pip, is listed by `suite tasks`, trains,
and passes its own tests as written.

It is installed into a throwaway virtual environment that sees this one's packages through a .pth
file, so the running environment never holds it and no other test sees it."""
import os
import site
import subprocess
import sys
import sysconfig

import pytest

from conftest import suite_main


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def throwaway_python(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    lines = [f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()]
    (venv / "lib" / purelib.split("/lib/", 1)[1] / "parent.pth").write_text("\n".join(lines) + "\n")
    return str(venv / "bin" / "python")


def test_a_generated_plugin_installs_lists_trains_and_passes_its_own_tests(throwaway_python, tmp_path, capsys):
    code, out, err = suite_main(capsys, "new-plugin", "majority", "--dir", tmp_path / "suite-majority")
    assert code == 0, err
    package = tmp_path / "suite-majority"
    assert {str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()} == {
        "pyproject.toml", "README.md", "suite_majority/__init__.py", "suite_majority/majority.yaml",
        "tests/test_suite_majority.py"}
    python = throwaway_python
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", package)

    tasks = run(python, "-m", "suite.cli", "tasks").stdout
    assert "majority" in tasks and "[majority]" in tasks and "arithmetic" in tasks

    out = run(python, "-m", "suite.cli", "train", "--task", "majority", "--no-progress", "--trainer.max_steps", 6,
              "--trainer.val_check_interval", 6, "--data.size", 2000, "--run.root", tmp_path / "runs").stdout
    run_dir = next((tmp_path / "runs" / "majority").iterdir())
    assert f"run directory: {run_dir}" in out and (run_dir / "metrics.json").is_file()
    assert "size: 2000" in (run_dir / "config.yaml").read_text()  # the shipped settings, overridden
    assert "pooling: mean" in (run_dir / "config.yaml").read_text()

    tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", package, cwd=package).stdout
    assert "6 passed" in tests


@pytest.mark.parametrize("args, message", [
    (["new-plugin", "My_Task"], "'My_Task' is not a usable plugin name"),
    (["new-plugin", "vision"], "'vision' is already a task or plugin name"),
])
def test_bad_names_are_one_clear_error(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = suite_main(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_an_existing_directory_is_never_overwritten(capsys, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    code, _, err = suite_main(capsys, "new-plugin", "fresh", "--dir", tmp_path)
    assert code == 2 and "exists and is not an empty directory" in err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
