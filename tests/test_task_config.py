"""A plugin ships its task's settings: Task.config_file, a YAML file in the plugin package, gives
the task's defaults (shown by --print-config like a built-in task's) and, under `transfer:`, its
settings in each `suite transfer` profile."""
import dataclasses
import sys
import textwrap

import pytest
import yaml

import suite
from suite import config, registry, testing

from conftest import suite_main

PLUGIN = '''
import suite


class Echo(suite.ClassificationTask):
    name = "echo"
    domain = "test"
    class_names = ["no", "yes"]
    config_file = "echo.yaml"
    defaults = {"data": {"size": 10, "from_defaults": 1}}


@suite.hookimpl
def suite_register_tasks(register):
    register(Echo())
'''

SETTINGS = '''
data:
  size: 500             # overrides the class's defaults
  alphabet: xyz
optim:
  lr: 0.005
transfer:
  quick: {data.size: 50, trainer.max_steps: 20}
  full: {data.size: 5000}
'''


@pytest.fixture
def echo(tmp_path, monkeypatch):
    """The plugin as a package on sys.path, its YAML file next to its module, registered directly."""
    package = tmp_path / "echo_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN)
    (package / "echo.yaml").write_text(textwrap.dedent(SETTINGS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "echo_plugin", raising=False)  # this test's copy, not an earlier one
    import echo_plugin

    reg = registry.reset_registry(autoload=False)
    reg.register(echo_plugin, "echo")
    yield reg.task("echo"), package
    registry.reset_registry()


def test_the_shipped_settings_are_the_tasks_defaults(echo, capsys):
    code, out, err = suite_main(capsys, "train", "--task", "echo", "--data.alphabet", "ab", "--print-config")
    assert code == 0, err
    cfg = yaml.safe_load(out)
    assert cfg["data"]["size"] == 500 and cfg["data"]["from_defaults"] == 1  # file over the class's defaults
    assert cfg["data"]["alphabet"] == "ab" and cfg["optim"]["lr"] == 0.005  # the command line over the file
    assert cfg["optim"]["weight_decay"] == 0.01 and "transfer" not in cfg  # configs/defaults.yaml; no run setting
    code, _, err = suite_main(capsys, "train", "--task", "echo", "--data.alphabett", "ab", "--print-config")
    assert code == 2 and "did you mean --data.alphabet" in err  # the shipped keys are known keys


def test_transfer_overrides_come_from_the_plugin_package(echo):
    task, _ = echo
    assert config.transfer_overrides(task, "quick") == {"data.size": 50, "trainer.max_steps": 20}
    assert config.transfer_overrides(task, "full") == {"data.size": 5000}
    assert config.transfer_overrides(task, "medium") == {}
    assert config.transfer_overrides(registry.get_registry().task("arithmetic"), "quick") == {}


def test_a_missing_or_malformed_settings_file_is_one_clear_error(echo, capsys):
    task, package = echo
    (package / "echo.yaml").write_text("transfer:\n  quick: 3\n")
    with pytest.raises(config.SuiteError, match=r"echo.yaml: `transfer:` must map profile names to settings"):
        config.transfer_overrides(task, "quick")
    (package / "echo.yaml").unlink()
    code, _, err = suite_main(capsys, "train", "--task", "echo", "--print-config")
    assert code == 2 and "echo.yaml: the config file of task 'echo' (Task.config_file) is missing" in err
    assert len(err.strip().splitlines()) == 1


@dataclasses.dataclass
class TypedData(suite.DataSettings):
    """data: strings to echo"""

    size: int = 10
    """strings generated"""
    batch_size: int = 16


class TypedEcho(suite.ClassificationTask):
    name = "typed-echo"
    domain = "test"
    class_names = ["no", "yes"]
    settings = {"data": TypedData}
    defaults = {"data": {"size": 20, "alphabet": "xy"}}  # untyped settings keep working beside typed ones


class TypedPlugin:
    @suite.hookimpl
    def suite_register_tasks(self, register):
        register(TypedEcho())


def test_a_plugin_declares_typed_settings_with_help(capsys):
    with testing.registered(TypedPlugin()):
        with pytest.raises(SystemExit):
            suite_main(capsys, "train", "--task", "typed-echo", "--help")
        out = capsys.readouterr().out
        assert "data: strings to echo" in out and "strings generated (type: int, default: 20)" in out
        code, out, err = suite_main(capsys, "train", "--task", "typed-echo", "--data.alphabet", "ab", "--print-config")
        assert code == 0, err
        assert yaml.safe_load(out)["data"] == {"batch_size": 16, "eval_batch_size": 256, "num_workers": 0, "train_limit": None,
                                               "size": 20, "alphabet": "ab"}  # a plain dict, as tasks read it
        code, _, err = suite_main(capsys, "train", "--task", "typed-echo", "--data.size", "many", "--print-config")
        assert code == 2 and err.strip() == "suite: error: data.size: 'many' is not an integer"
