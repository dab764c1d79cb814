"""The plugin contract: direct registration, duplicates, broken plugins, autoload switch."""
import textwrap

import pytest

import suite
from suite import cli, config, registry
from suite.train import build

from conftest import run_suite


class ParityTask(suite.Task):
    """A task defined by a test: is the number of 1s in a bit string odd?"""

    name = "parity"
    domain = "test"
    description = "parity of a bit string"
    objective = suite.Classification
    tokenizer_class = suite.CharTokenizer

    def build_tokenizer(self, cfg):
        return suite.CharTokenizer("01")

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model)

    def build_head(self, tokenizer, d_model, cfg):
        return suite.ClassifierHead(d_model, 2)

    def classes(self, tokenizer):
        return ["even", "odd"]


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


def test_two_plugins_with_the_same_task_name_is_an_error_naming_both(fresh_registry, capsys):
    fresh_registry.register(ParityPlugin(), "first-plugin")
    fresh_registry.register(ParityPlugin(), "second-plugin")
    assert cli.main(["tasks"]) == 2
    err = capsys.readouterr().err
    assert "'parity'" in err and "first-plugin" in err and "second-plugin" in err
    assert len(err.strip().splitlines()) == 1


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


def test_a_hook_that_raises_is_skipped_with_a_warning(fresh_registry, capsys):
    class Broken:
        @suite.hookimpl
        def suite_register_tasks(self, register):
            raise RuntimeError("boom")

    fresh_registry.register(Broken(), "broken")
    assert "arithmetic" in fresh_registry.all_tasks()
    assert "plugin 'broken' failed in suite_register_tasks" in capsys.readouterr().err


def write_fake_distribution(root, module_body: str):
    """An installed distribution `brokenplug` whose entry point imports `brokenplug_mod`."""
    (root / "brokenplug_mod.py").write_text(textwrap.dedent(module_body))
    dist = root / "brokenplug-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[suite.plugins]\nbrokenplug = brokenplug_mod\n")


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
    assert "weight sources: hf, minilm\n    backbone presets: minilm" in proc.stdout  # the text plugin's
