import pytest

from espcn_lab.config import ConfigError, check_value, load_config, to_dict


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_file_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  scale: 2\noptim:\n  learning_rate: 0.01\n"),
                      ["model.activation=relu", "model.features=[32,16]", "optim.learning_rate=1e-3",
                       "data.val_dirs.Set5=/x/Set5", "--trainer.devices=2"])
    assert cfg.model.scale == 2 and cfg.model.activation == "relu" and cfg.model.features == [32, 16]
    assert cfg.optim.learning_rate == pytest.approx(1e-3)
    assert cfg.data.val_dirs == {"Set5": "/x/Set5"} and cfg.trainer.devices == 2
    assert to_dict(cfg)["model"]["kernels"] == [5, 3, 3]


@pytest.mark.parametrize("override,match", [
    (["model.colour=1"], "model.colour"),
    (["modle.scale=2"], "modle"),
    (["model.scale=three"], "model.scale"),
    (["optim.learning_rate=[1]"], "optim.learning_rate"),
    (["model.features=[64,32,16]"], "model.kernels"),
    (["model.activation=sigmoidish"], "model.activation"),
    (["optim.name=lbfgs"], "optim.name"),
    (["scale"], "KEY=VALUE"),
])
def test_bad_keys_and_types_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, override)


def test_int_widens_to_float_but_bool_is_not_int():
    assert load_config(None, ["optim.learning_rate=1"]).optim.learning_rate == 1.0
    with pytest.raises(ConfigError, match="model.scale"):
        load_config(None, ["model.scale=true"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(write(tmp_path, "model: [unclosed\n"))


def test_check_value_for_sweeps():
    assert check_value("model.features", [16, 8]) == [16, 8]
    with pytest.raises(ConfigError):
        check_value("model.nope", 1)
