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
    with pytest.raises(SuiteError, match="--optim.lr takes a number .*not 'fast'"):
        resolve(**{"optim.lr": "fast"})


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
    from suite.train import make_trainer

    cfg = resolve(**{"trainer.max_step": 5})  # the trainer section is open: any Trainer argument
    with pytest.raises(SuiteError, match="did you mean --trainer.max_steps"):
        make_trainer(cfg, None)


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


def test_a_broken_config_file_is_one_clear_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("optim: [unclosed\n")
    with pytest.raises(SuiteError, match="bad.yaml: not valid YAML"):
        config.load_yaml(f)
