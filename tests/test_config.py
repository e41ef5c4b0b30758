import pytest

from espcn_lab.config import ConfigError, check_value, load_config, to_dict
from espcn_lab.paths import REPO_ROOT


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


ROOT = REPO_ROOT

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml")) + [ROOT / "espcn_lab" / "assets" / "quickstart.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.model.kernels and cfg.optim.learning_rate > 0


def test_experiments_share_the_paper_base():
    paper = load_config(ROOT / "configs" / "base" / "paper.yaml")
    for name in ("x2_tanh", "x3_t91_tanh", "x4_291_tanh", "x3_imagenet_tanh"):
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert (cfg.model.features, cfg.model.kernels, cfg.optim.last_layer_lr_scale) == ([64, 32], [5, 3, 3], 0.1)
        assert "extends" in (ROOT / "configs" / f"{name}.yaml").read_text()
    assert paper.data.val_dirs == {"Set5": "../shared/data/Set5", "Set14": "../shared/data/Set14"}


def test_extends_merges_sections_and_replaces_values(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {scale: 4, activation: relu}\ndata: {val_dirs: {A: a, B: b}, batch_size: 8}\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\nmodel: {scale: 2}\n")
    cfg = load_config(write(tmp_path, "extends: [mid.yaml]\ndata: {val_dirs: {C: c}}\n"), ["model.activation=elu"])
    assert (cfg.model.scale, cfg.model.activation, cfg.data.batch_size) == (2, "elu", 8)
    assert cfg.data.val_dirs == {"C": "c"}  # a mapping value replaces, as an override does


def test_extends_loops_and_missing_bases_are_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(write(tmp_path, "extends: nowhere.yaml\n"))


@pytest.mark.parametrize("text", ["- model\n- data\n", "42\n", "just words\n"])
def test_a_file_that_is_not_a_mapping_is_one_line(tmp_path, text):
    with pytest.raises(ConfigError, match="a config file is a mapping of sections") as err:
        load_config(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_references_to_config_keys_resolve_and_others_stay(tmp_path):
    cfg = load_config(None, ["model.scale=4", "data.train_shards=shards/x${model.scale}",
                             "run.name=pipe:curl ${HOME}/${model.scale}"])
    assert cfg.data.train_shards == "shards/x4" and cfg.run.name == "pipe:curl ${HOME}/4"


@pytest.mark.parametrize("override,message", [
    ("model.colour=1", "unknown config key model.colour (known: activation, channels, features, kernels, reparam, scale)"),
    ("model.scale=three", "model.scale: expected int, got 'three'"),
    ("optim.name=lbfgs", "optim.name: must be one of ['sgd', 'adam', 'adamw'], got 'lbfgs'"),
    ("model.features=[8,x]", "model.features[1]: expected int, got 'x'"),
    ("data.batch_size=0", "data.batch_size: must be > 0, got 0"),  # ranges: ours, checked after the types
    ("optim.learning_rate=-0.1", "optim.learning_rate: must be > 0, got -0.1"),
    ("trainer.ddp_timeout_s=0", "trainer.ddp_timeout_s: must be > 0, got 0"),
    ("run.checkpoint_every_min=-1", "run.checkpoint_every_min: must be >= 0, got -1.0"),
    ("optim.ema_decay=1", "optim.ema_decay: must be in [0, 1), got 1.0"),
    ("optim.ema_decay=-0.5", "optim.ema_decay: must be >= 0, got -0.5"),
])
def test_errors_read_the_same_whatever_the_library(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == message


def test_the_timed_last_checkpoint_is_on_by_default_and_zero_turns_it_off(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from espcn_lab.train.callbacks import run_callbacks
    from espcn_lab.train.signals import StopRequest

    def timers(*overrides):
        found = run_callbacks(load_config(None, list(overrides)), tmp_path, StopRequest(), "bar")
        return [c._train_time_interval.total_seconds() for c in found
                if isinstance(c, ModelCheckpoint) and c._train_time_interval is not None]

    assert timers() == [600.0] and timers("run.checkpoint_every_min=0.5") == [30.0]
    assert timers("run.checkpoint_every_min=0") == []


def test_fit_help_lists_every_config_key_by_section(capsys):
    """`espcn-lab fit --help` teaches the keys a file or an override may set, read from the schema itself."""
    from _cli import run_cli

    from espcn_lab.config import flat_keys

    code, out, _ = run_cli(["fit", "--help"], capsys)
    lines = " ".join(out.split("Config keys", 1)[1].split())  # Rich wraps lines; words stay whole
    assert code == 0
    for key in flat_keys():
        section, name = key.split(".", 1)
        assert f"{section}." in lines and f" {name} " in f" {lines} ", key
