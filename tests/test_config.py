import pytest

from suite import config
from suite.errors import SuiteError
from suite.registry import get_registry


def test_overrides_are_read_as_yaml_scalars():
    got = config.parse_overrides(["--trainer.max_steps", "200", "--data.ops=+-", "--data.reverse", "false",
                                  "--optim.betas", "[0.9, 0.95]", "--run.name", "null"])
    assert got == {"trainer.max_steps": 200, "data.ops": "+-", "data.reverse": False,
                   "optim.betas": [0.9, 0.95], "run.name": None}
    # YAML reads 1e-4 (no dot) as text; on the command line it is the number
    assert config.parse_overrides(["--optim.lr", "1e-4", "--run.name", "1e4x"]) == {"optim.lr": 1e-4, "run.name": "1e4x"}


def test_text_where_a_number_belongs_is_one_clear_error():
    with pytest.raises(SuiteError, match=r"^optim.lr: 'fast' is not a float$"):
        resolve(**{"optim.lr": "fast"})


@pytest.mark.parametrize("args, message", [
    (["--optim.lr", "abc"], "optim.lr: 'abc' is not a float"),
    (["--data.max_digits", "2.5"], "data.max_digits: '2.5' is not an integer"),  # typed by ArithmeticData
    (["--run.threads", "many"], "run.threads: 'many' is not an integer or null"),
    (["--optim.schedule", "linear"], "optim.schedule: 'linear' is not one of cosine, constant"),
    (["--trainer.max_steps", "lots"], "trainer.max_steps: 'lots' is not an integer"),  # typed from lightning.Trainer
])
def test_command_line_values_are_parsed_by_their_types(args, message):
    reg = get_registry()
    with pytest.raises(SuiteError) as e:
        config.resolve(reg.task("arithmetic"), args=args, presets=reg.all_presets())
    assert str(e.value) == message


def test_command_line_values_take_their_types():
    reg = get_registry()
    cfg = config.resolve(reg.task("arithmetic"), presets=reg.all_presets(), args=[
        "--optim.lr", "1e-4", "--optim.betas", "[0.9, 0.95]", "--data.reverse", "false", "--run.name", "null",
        "--trainer.devices", "2", "--trainer.precision", "bf16-mixed", "--data.ops=+-*"])
    assert cfg["optim"]["lr"] == 1e-4 and cfg["optim"]["betas"] == [0.9, 0.95] and cfg["data"]["reverse"] is False
    assert cfg["run"]["name"] is None and cfg["data"]["ops"] == "+-*"
    assert cfg["trainer"]["devices"] == 2 and cfg["trainer"]["precision"] == "bf16-mixed"
    assert "max_epochs" not in cfg["trainer"]  # the section holds the options set, not all of Trainer's


@pytest.mark.parametrize("args, message", [
    (["--trainer.max_steps"], "needs a value"),
    (["stray"], "unexpected argument"),
])
def test_bad_override_syntax(args, message):
    with pytest.raises(SuiteError, match=message):
        config.parse_overrides(args)


def resolve(**overrides):
    reg = get_registry()
    return config.resolve(reg.task("arithmetic"), overrides=overrides, presets=reg.all_presets())


def test_unknown_setting_suggests_the_close_one():
    with pytest.raises(SuiteError, match="did you mean --optim.lr"):
        resolve(**{"optim.lrr": 0.1})


def test_unknown_trainer_option_is_rejected_before_lightning_sees_it():
    with pytest.raises(SuiteError, match="did you mean --trainer.max_steps"):
        resolve(**{"trainer.max_step": 5})  # the section takes lightning.Trainer's arguments
    with pytest.raises(SuiteError, match="unknown setting --trainer.callbacks"):
        resolve(**{"trainer.callbacks": []})  # set by suite itself


def test_unknown_data_key_is_rejected():
    with pytest.raises(SuiteError, match="unknown setting --data.opz"):
        resolve(**{"data.opz": "+"})


def test_preset_fills_the_backbone_and_explicit_keys_win():
    cfg = resolve(**{"backbone.preset": "tiny", "backbone.n_layers": 3})
    assert cfg["backbone"]["preset"] == "tiny" and cfg["backbone"]["d_model"] == 64
    assert cfg["backbone"]["n_layers"] == 3


def test_unknown_backbone_key_and_preset_are_errors():
    with pytest.raises(SuiteError, match="backbone.n_layer;"):
        resolve(**{"backbone.n_layer": 3})
    with pytest.raises(SuiteError, match="unknown backbone preset 'huge'"):
        resolve(**{"backbone.preset": "huge"})


def test_layering_task_yaml_over_defaults_over_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("optim:\n  lr: 0.005\ndata:\n  max_digits: 4\n")
    reg = get_registry()
    cfg = config.resolve(reg.task("arithmetic"), config_file=str(f), overrides={"data.max_digits": 2},
                         presets=reg.all_presets())
    assert cfg["optim"]["lr"] == 0.005          # from the file
    assert cfg["data"]["max_digits"] == 2       # the command line beats the file
    assert cfg["data"]["ops"] == "+-"           # configs/tasks/arithmetic.yaml
    assert cfg["optim"]["weight_decay"] == 0.01  # configs/defaults.yaml


def test_a_bad_key_or_value_in_a_config_file_names_the_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("optim:\n  lr: fast\n")
    reg = get_registry()
    with pytest.raises(SuiteError, match=r"mine.yaml: optim.lr: 'fast' is not a float"):
        config.resolve(reg.task("arithmetic"), config_file=str(f), presets=reg.all_presets())
    f.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(SuiteError, match=r"mine.yaml: unknown setting --optim.lrr; did you mean --optim.lr\?"):
        config.resolve(reg.task("arithmetic"), config_file=str(f), presets=reg.all_presets())


def test_a_broken_config_file_is_one_clear_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("optim: [unclosed\n")
    with pytest.raises(SuiteError, match="bad.yaml: not valid YAML"):
        config.load_yaml(f)
