"""The plugin contract and loading that nothing breaks: direct registration, a name two plugins
claim, hooks that raise, broken and disabled plugins, the autoload switch."""
import textwrap

import pytest

import suite
from suite import cli, config, registry
from suite.train import build

from conftest import TINY, metrics, run_dir_from, run_suite, suite_main


class ParityTask(suite.ClassificationTask):
    """A task defined by a test: is the number of 1s in a bit string odd?"""

    name = "parity"
    domain = "test"
    description = "parity of a bit string"
    class_names = ["even", "odd"]

    def build_tokenizer(self, cfg):
        return suite.CharTokenizer("01")


class ParityPlugin:
    @suite.hookimpl
    def suite_register_tasks(self, register):
        register(ParityTask())


@pytest.fixture
def fresh_registry():
    reg = registry.reset_registry(autoload=False)
    yield reg
    registry.reset_registry()


def test_a_plugin_object_registered_directly_adds_its_task(fresh_registry, capsys):
    fresh_registry.register(ParityPlugin(), "parity-plugin")
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "parity" in out and "test" in out and "[parity-plugin]" in out
    assert "arithmetic" in out  # built-in plugins still load with autoload off


def test_two_plugins_with_the_same_task_name_make_only_that_name_unusable(fresh_registry, capsys):
    fresh_registry.register(ParityPlugin(), "first-plugin", "first-dist", "1.0")
    fresh_registry.register(ParityPlugin(), "second-plugin", "second-dist", "2.0")
    assert cli.main(["tasks"]) == 0
    out, err = capsys.readouterr()
    assert "arithmetic" in out and "parity" not in out
    assert "task 'parity' is registered by 2 plugins, 'first-plugin' (first-dist 1.0) and 'second-plugin' (second-dist 2.0)" in err
    assert len(err.strip().splitlines()) == 1  # one warning line, once per process
    assert cli.main(["train", "--task", "parity", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suite: error: task 'parity' is registered by 2 plugins") and "first-dist 1.0" in err
    assert "--disable-plugin" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["train", "--task", "arithmetic", "--print-config"]) == 0  # every other task works
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.count("tasks: parity (UNUSABLE: also registered by another plugin)") == 2
    assert "conflicts:\n    task 'parity' is registered by 2 plugins" in out


def test_a_weight_source_two_plugins_register_is_an_error_naming_both(fresh_registry, capsys, tmp_path):
    class Source:
        @suite.hookimpl
        def suite_register_weight_sources(self, register):
            register(suite.WeightSource("same", "a source", lambda arg: None))

    fresh_registry.register(Source(), "one")
    fresh_registry.register(Source(), "two")
    code, _, err = suite_main(capsys, "train", "--task", "arithmetic", "--init-from", "same", "--run.root", tmp_path)
    assert code == 2 and "suite: error: weight source 'same' is registered by 2 plugins, 'one' and 'two'" in err


def test_disabling_one_of_the_two_makes_the_name_usable_again(fresh_registry):
    fresh_registry.register(ParityPlugin(), "first-plugin")
    fresh_registry.register(ParityPlugin(), "second-plugin")
    fresh_registry.disable(["second-plugin"], "--disable-plugin")
    assert fresh_registry.task("parity").plugin == "first-plugin"
    assert fresh_registry.plugins["second-plugin"].disabled == "--disable-plugin"


def test_backbone_state_dict_keys_are_identical_across_tasks(fresh_registry):
    fresh_registry.register(ParityPlugin(), "parity-plugin")
    keys = {}
    for name in ("arithmetic", "parity"):
        task = fresh_registry.task(name)
        cfg = config.resolve(task, presets=fresh_registry.all_presets(), overrides={"backbone.preset": "tiny"})
        _, module = build(task, cfg)
        keys[name] = {k: tuple(v.shape) for k, v in module.backbone.state_dict().items()}
    assert keys["arithmetic"] == keys["parity"]
    assert "pos_emb" in keys["parity"] and "blocks.1.attn.qkv.weight" in keys["parity"]


def test_a_hook_that_raises_is_one_warning_line_and_what_it_registered_is_dropped(fresh_registry, capsys):
    class Broken:
        @suite.hookimpl
        def suite_register_tasks(self, register):
            register(ParityTask())
            raise suite.SuiteError("no data here")  # any exception, SuiteError included

    fresh_registry.register(Broken(), "broken")
    assert "arithmetic" in fresh_registry.all_tasks() and "parity" not in fresh_registry.all_tasks()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("suite: warning: plugin 'broken' failed in suite_register_tasks and is skipped: "
                             "SuiteError: no data here (at ") and "test_plugins.py:" in err[0]
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "broken  [(registered directly)]\n    suite_register_tasks FAILED: SuiteError: no data here (at " in out


def test_a_plugin_command_named_like_a_suite_command_is_skipped(fresh_registry, capsys):
    class Clash:
        @suite.hookimpl
        def suite_register_commands(self, register):
            register("train", "not the real train", lambda p: None, lambda args: 0)

    fresh_registry.register(Clash(), "clash")
    assert cli.main(["train", "--task", "arithmetic", "--print-config"]) == 0
    assert "plugin 'clash' adds a command 'train', which suite has already; it is skipped" in capsys.readouterr().err


def write_fake_distribution(root, module_body: str, name: str = "brokenplug", version: str = "1.2.3"):
    """An installed distribution NAME whose entry point NAME imports the module NAME_mod."""
    module = name.replace("-", "_") + "_mod"
    (root / f"{module}.py").write_text(textwrap.dedent(module_body))
    dist = root / f"{name.replace('-', '_')}-{version}.dist-info"  # the folder name is the normalised name
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[suite.plugins]\n{name} = {module}\n")


def test_a_plugin_that_fails_to_import_gets_one_warning_line_and_the_rest_works(tmp_path):
    write_fake_distribution(tmp_path, "import this_module_does_not_exist\n")
    env = {"PYTHONPATH": str(tmp_path)}
    proc = run_suite("tasks", env=env)
    assert "arithmetic" in proc.stdout
    warnings = [l for l in proc.stderr.splitlines() if "brokenplug" in l]
    assert len(warnings) == 1 and "ModuleNotFoundError" in warnings[0] and "1.2.3" in warnings[0]
    plugins = run_suite("plugins", env=env).stdout
    assert "FAILED TO LOAD" in plugins and "brokenplug" in plugins


def test_the_environment_variable_disables_external_plugins(tmp_path):
    write_fake_distribution(tmp_path, "import this_module_does_not_exist\n")
    proc = run_suite("plugins", env={"PYTHONPATH": str(tmp_path), "SUITE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "brokenplug" not in proc.stdout + proc.stderr
    assert "arithmetic  [suite" in proc.stdout
    assert "backbone presets: base, small, tiny" in proc.stdout  # the host's own, from configs/backbone/
    assert "weight sources: hf, minilm, smollm2\n    backbone presets: minilm, smollm2" in proc.stdout  # the text plugin's


# Two external distributions that both register the task "twin"; twin-a also has a task of its own.
TWIN_PLUGIN = """
import torch
import suite


class Bits(suite.ClassificationTask):
    domain = "test"
    class_names = ["even", "odd"]

    def __init__(self, name):
        self.name = name

    def build_tokenizer(self, cfg):
        return suite.CharTokenizer("01")

    def build_data(self, tokenizer, cfg):
        x = torch.randint(3, 5, (64, 8), generator=torch.Generator().manual_seed(0))  # the ids of 0 and 1
        y = (x == 4).sum(1) % 2
        return {s: torch.utils.data.TensorDataset(x, y) for s in ("train", "val", "test")}

    def collate(self, samples):
        x, y = zip(*samples)
        return {"inputs": torch.stack(x), "label": torch.stack(y)}


@suite.hookimpl
def suite_register_tasks(register):
    register(Bits("twin"))
    register(Bits("solo-{name}"))
"""


@pytest.fixture
def twins(tmp_path, monkeypatch):
    for name, version in (("twin-a", "1.0"), ("twin-b", "2.0")):
        write_fake_distribution(tmp_path, TWIN_PLUGIN.replace("{name}", name), name, version)
    monkeypatch.syspath_prepend(str(tmp_path))  # in-process registries see them too
    yield {"PYTHONPATH": str(tmp_path)}
    registry.reset_registry()


def test_two_distributions_claiming_one_task_name_list_both_and_the_rest_trains(twins, tmp_path, capsys):
    proc = run_suite("plugins", env=twins)
    assert proc.returncode == 0
    assert "twin-a  [twin-a 1.0]\n    tasks: twin (UNUSABLE: also registered by another plugin), solo-twin-a" in proc.stdout
    assert "task 'twin' is registered by 2 plugins, 'twin-a' (twin-a 1.0) and 'twin-b' (twin-b 2.0)" in proc.stdout
    assert "arithmetic  [suite" in proc.stdout
    registry.reset_registry()  # this process sees the two distributions too (the twins fixture)
    code, out, err = suite_main(capsys, "train", "--task", "solo-twin-a", *TINY, "--trainer.max_steps", 2,
                                "--trainer.val_check_interval", 2, "--run.root", tmp_path / "runs")
    assert code == 0 and set(metrics(run_dir_from(out))["splits"]) == {"val", "test"}
    assert err.count("task 'twin' is registered by 2 plugins") == 1  # a warning, not an error


def test_the_twin_is_unusable_until_one_is_disabled(twins, capsys, monkeypatch):
    registry.reset_registry()
    code, _, err = suite_main(capsys, "train", "--task", "twin", "--print-config")
    assert code == 2 and err.strip().splitlines()[-1].startswith("suite: error: task 'twin' is registered by 2 plugins")
    registry.reset_registry()
    code, out, _ = suite_main(capsys, "--disable-plugin", "twin-b", "train", "--task", "twin", "--print-config")
    assert code == 0 and "task: twin" in out
    code, out, _ = suite_main(capsys, "plugins")
    assert "twin-b  [twin-b 2.0]\n    disabled (--disable-plugin)" in out and "solo-twin-b" not in out
    monkeypatch.setenv("SUITE_DISABLE_PLUGINS", "twin-a, vision")
    registry.reset_registry()
    code, out, err = suite_main(capsys, "tasks")
    assert code == 0 and "twin " in out and "solo-twin-b" in out
    assert "solo-twin-a" not in out and "vision" not in out and "arithmetic" in out  # built-in plugins too
    assert "warning" not in err
    code, out, _ = suite_main(capsys, "plugins")
    assert "vision  [suite 0.1.0]\n    disabled (SUITE_DISABLE_PLUGINS)\n" in out


def test_disabling_a_plugin_that_does_not_exist(capsys, monkeypatch):
    registry.reset_registry()
    code, _, err = suite_main(capsys, "tasks", "--disable-plugin", "nosuch")
    assert code == 2 and err.startswith("suite: error: --disable-plugin nosuch: no plugin of that name; plugins: ")
    assert "arithmetic" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("SUITE_DISABLE_PLUGINS", "nosuch")
    registry.reset_registry()
    code, out, err = suite_main(capsys, "tasks")
    assert code == 0 and "arithmetic" in out
    assert "SUITE_DISABLE_PLUGINS names 'nosuch', which is not a plugin" in err
    monkeypatch.delenv("SUITE_DISABLE_PLUGINS")
    registry.reset_registry()
