import pytest
import yaml

from components.config import PipelineConfig
from components.presets import PRESETS, ConfigError, load_config, preset

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_round_trips(name):
    cfg = preset(name)
    assert cfg.preset == name
    assert PipelineConfig.model_validate(cfg.model_dump()) == cfg


def test_cli_override_changes_only_that_field():
    base = load_config("tiny")
    cfg = load_config("tiny", overrides=["pretrain.lr=3e-4"])
    assert cfg.pretrain.lr == pytest.approx(3e-4)
    assert cfg.model_copy(update={"pretrain": base.pretrain}) == base


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny", "pretrain": {"lr": 0.01, "seed": 7}}))
    cfg = load_config(None, path, ["pretrain.seed=9"])
    assert (cfg.preset, cfg.pretrain.lr, cfg.pretrain.seed) == ("tiny", 0.01, 9)


def test_bad_value_names_field_and_range():
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=["pretrain.lr=-1"])
    assert "pretrain.lr" in str(err.value) and "> 0" in str(err.value) and "-1" in str(err.value)


@pytest.mark.parametrize("override, words", [
    ("pretrain.lrr=1", "Did you mean 'pretrain.lr'"),
    ("nosuch.x=1", "Unknown config field 'nosuch'"),
    ("model.n_head=5", "must divide model.d_model"),
    ("model.vocab_size=2000", "must equal tokenizer.vocab_size"),
    ("pretrain.batch_tokens=1000", "must be a multiple of"),
    ("pack.seq_len=4096", "exceeds model.max_seq_len"),
    ("lr", "section.field=value"),
])
def test_invalid_configs_fail_with_a_clear_message(override, words):
    with pytest.raises(ConfigError, match=None) as err:
        load_config("tiny", overrides=[override])
    assert words in str(err.value)


def test_unknown_preset_suggests_a_name():
    with pytest.raises(ConfigError, match="Did you mean 'tiny'"):
        preset("tinny")


def test_every_shipped_yaml_config_loads():
    from pathlib import Path

    shipped = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert shipped, "the repository ships example configs under configs/"
    for path in shipped:
        load_config(None, path)


def test_fields_have_docstrings():
    from components import config as module

    for cls in [getattr(module, n) for n in dir(module) if n.endswith("Config")]:
        if isinstance(cls, type) and issubclass(cls, module.StageConfig) and cls is not module.StageConfig:
            undocumented = [n for n, f in cls.model_fields.items() if not f.description]
            assert not undocumented or cls is PipelineConfig, f"{cls.__name__}: {undocumented}"


def test_only_the_tiny_chat_model_is_exempt_from_the_bpb_bar():
    from components.presets import preset

    tiny, small = preset("tiny").registry, preset("small").registry
    assert not tiny.bpb_bar_for(tiny.chat_model) and tiny.bpb_bar_for(tiny.base_model)
    assert small.bpb_bar_for(small.chat_model) and small.bpb_bar_for(small.base_model)
