"""The example external plugin: once pip-installed, its task appears and trains."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, metrics, run_dir_from, run_suite

EXAMPLE = Path(__file__).parents[1] / "examples" / "suite-example-plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    return {"PYTHONPATH": str(target)}


def test_installed_plugin_task_is_listed(installed):
    assert "palindrome" not in run_suite("tasks").stdout
    tasks = run_suite("tasks", env=installed).stdout
    assert "palindrome" in tasks and "toy" in tasks
    plugins = run_suite("plugins", env=installed).stdout
    assert "palindrome  [suite-example-plugin 0.1.0]" in plugins


def test_installed_plugin_task_trains_and_predicts(installed, tmp_path):
    proc = run_suite("train", "--task", "palindrome", *TINY, "--trainer.max_steps", 20,
                     "--trainer.val_check_interval", 10, "--data.train_size", 500, "--run.root", tmp_path, env=installed)
    run = run_dir_from(proc.stdout)
    assert set(metrics(run)["splits"]) == {"val", "test"}
    assert (run / "test_confusion_matrix.json").is_file()
    answer = run_suite("predict", run, "12321", env=installed).stdout
    assert answer.startswith(("yes", "no"))


def test_autoload_switch_hides_the_installed_plugin(installed):
    env = {**installed, "SUITE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    assert "palindrome" not in run_suite("tasks", env=env).stdout
