"""Configs: YAML -> typed dataclasses, overrides with type coercion, clear errors, atomic save, problem-specific sections."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from valan import problems
from valan.problems.config import EnvConfig, TrainConfig
from valan.problems.r2r.config import R2RConfig
from valan.config import apply_overrides, load_config, save_config, to_dict
from valan.problems import config_from_dict, load_train_config
from valan.configs import config_path
from valan.errors import InputError


def test_embedded_default_and_full_r2r_configs_load():
    default = load_train_config()
    assert default == load_train_config(config_path("r2r_sample.yaml"))
    assert default.problem == "r2r" and default.data.root is None
    assert default.data.resolve(default.data.train[0]).is_file()  # bundled sample
    full = load_train_config(config_path("r2r.yaml"))  # the unseen protocol: `valan data split r2r` files
    assert full.data.root == "." and full.data.train == ["runs/splits/r2r/train.json"]
    # a relative root is the working directory's: resolved paths are absolute, so resolving twice is harmless
    assert full.data.resolve(full.data.connectivity) == Path.cwd() / "../shared/data/r2r/connectivity"
    assert full.data.resolve(str(full.data.resolve(full.data.connectivity))) == full.data.resolve(full.data.connectivity)
    assert set(full.data.eval) == {"val_seen", "dev_unseen"}


def test_missing_keys_take_defaults_and_ints_promote_to_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning:\n  lr: 1e-3\n  grad_clip: 5\nrun:\n  seed: 7\n")
    config = load_train_config(path)
    assert config.learning.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; the float field parses it
    assert config.learning.grad_clip == 5.0 and isinstance(config.learning.grad_clip, float)
    assert config.run.seed == 7 and config.agent == R2RConfig().agent


def test_overrides_coerce_by_field_type():
    config = apply_overrides(R2RConfig(), [
        "learning.lr=2e-4", "learning.batch_size=32", "learning.mode=rl", "distributed.ray_address=auto",
        "data.train=[a.json, b.json]", "data.eval.val_unseen=R2R_val_unseen.json", "data.root=123",
        "run.total_minutes=30", "data.vocab=null.txt",
    ])
    assert config.learning.lr == pytest.approx(2e-4) and config.learning.batch_size == 32
    assert config.learning.mode == "rl" and config.distributed.ray_address == "auto"
    cwd = Path.cwd()  # file names given on the command line are relative to the working directory
    assert config.data.train == [str(cwd / "a.json"), str(cwd / "b.json")]
    assert config.data.eval == {"val_seen": "R2R_sample_val_seen.json", "val_unseen": str(cwd / "R2R_val_unseen.json")}
    assert config.data.root == "123"  # string fields take the text verbatim
    assert config.run.total_minutes == 30.0 and config.data.vocab == str(cwd / "null.txt")
    assert apply_overrides(config, ["data.root=null"]).data.root is None
    assert R2RConfig().learning.lr == pytest.approx(1e-3)  # the original is untouched


@pytest.mark.parametrize("override, message", [
    ("learning.lrr=1", "unknown config key 'learning.lrr' \\(did you mean 'lr'\\?\\)"),
    ("lerning.lr=1", "unknown config key 'lerning'"),
    ("learning.batch_size=1.5", "learning.batch_size: expected an integer"),
    ("learning.batch_size=abc", "learning.batch_size: expected an integer"),
    ("learning.mode=reinforce", "learning.mode: 'reinforce' is not one of mixed, imitation, rl, student_forcing"),
    ("learning.p_imitation=1.5", "p_imitation must be in \\[0, 1\\]"),
    ("learning.rl_cost=-0.5", "learning.rl_cost must be >= 0"),
    ("agent.progress_monitor=-1", "agent.progress_monitor must be >= 0"),
    ("learning.lr", "must look like section.key=value"),
    ("learning.lr.x=1", "'learning.lr' is a value, not a section"),
    ("learning=3", "learning: expected a section"),
    ("env.max_steps=true", "env.max_steps: expected an integer"),
])
def test_bad_overrides_are_one_line_input_errors(override, message):
    with pytest.raises(InputError, match=message) as info:
        apply_overrides(R2RConfig(), [override])
    assert "\n" not in str(info.value)


def test_bad_files_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning:\n  unroll_lenght: 10\n")
    with pytest.raises(InputError, match="bad.yaml: unknown config key 'learning.unroll_lenght'"):
        load_train_config(path)
    path.write_text("learning: [1, 2\n")
    with pytest.raises(InputError, match="bad.yaml: malformed YAML"):
        load_train_config(path)
    path.write_text("- 1\n")
    with pytest.raises(InputError, match="mapping"):
        load_train_config(path)
    with pytest.raises(InputError, match="config file not found"):
        load_train_config(tmp_path / "missing.yaml")
    path.write_text("problem: nope\n")
    with pytest.raises(InputError, match="unknown problem 'nope'"):
        load_train_config(path)


def test_save_then_load_round_trips(tmp_path):
    config = apply_overrides(R2RConfig(), ["learning.lr=3e-4", "data.eval.val_unseen=x.json", "run.logdir=out"])
    path = save_config(tmp_path / "run" / "config.yaml", config)
    assert load_train_config(path) == config
    assert config_from_dict(to_dict(config)) == config  # what a checkpoint's "config" holds
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


@dataclass
class _ToyEnvConfig(EnvConfig):
    panorama_views: int = 8


@dataclass
class _ToyConfig(TrainConfig):
    problem: str = "toy"
    env: _ToyEnvConfig = field(default_factory=_ToyEnvConfig)


class _ToyProblem(problems.Problem):
    name: ClassVar[str] = "toy"
    config_class: ClassVar[type[TrainConfig]] = _ToyConfig


def test_problem_specific_env_fields_follow_the_problem(tmp_path, monkeypatch):
    module = types.ModuleType("valan_test_toy_problem")
    module.ToyProblem = _ToyProblem
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(problems.PROBLEMS, "toy", f"{module.__name__}:ToyProblem")
    path = tmp_path / "toy.yaml"
    path.write_text("problem: toy\nenv:\n  panorama_views: 4\n  max_steps: 30\n")
    config = load_train_config(path, ["env.panorama_views=6"])
    assert isinstance(config, _ToyConfig) and config.env.panorama_views == 6 and config.env.max_steps == 30
    with pytest.raises(InputError, match="unknown config key 'env.panorama_views'"):
        load_train_config(path, ["problem=r2r"])  # R2R has no such field
    assert isinstance(problems.get_problem("toy"), _ToyProblem)


@dataclass
class _RenamedRun:
    total_steps: int = 10


@dataclass
class _RenamedSchema:
    RENAMED: ClassVar[dict[str, str]] = {"training.steps": "run.total_steps", "old_section": "run"}
    run: _RenamedRun = field(default_factory=_RenamedRun)


def test_renamed_keys_name_the_new_key_in_files_and_overrides():
    from valan.config import apply_overrides, from_dict

    Schema = _RenamedSchema
    with pytest.raises(InputError, match=r"'training.steps' was renamed: use 'run.total_steps'") as e:
        from_dict(Schema, {"training": {"steps": 5}}, source="x.yaml")
    assert "x.yaml" in str(e.value)
    with pytest.raises(InputError, match=r"'old_section.anything' was renamed: use 'run'"):
        apply_overrides(Schema(), ["old_section.anything=3"])
    with pytest.raises(InputError, match="unknown config key 'training'"):
        from_dict(Schema, {"training": {"other": 1}})
    assert apply_overrides(Schema(), ["run.total_steps=7"]).run.total_steps == 7


def _leaves(data, prefix=""):
    """Dotted key -> value of every leaf of a nested mapping (dict-typed fields such as data.eval count as leaves)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "eval":
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


SUPERVISED_SCHEMAS = {
    "discriminator.yaml": "valan.problems.discriminator.config:DiscriminatorConfig",
    "discriminator_r2r.yaml": "valan.problems.discriminator.config:DiscriminatorConfig",
    "alignment.yaml": "valan.problems.alignment.config:AlignmentConfig",
    "sdr.yaml": "valan.problems.sdr.config:SDRConfig",
    "speaker.yaml": "valan.problems.speaker.config:SpeakerConfig",
}
SHIPPED = sorted(p.name for p in config_path("r2r.yaml").parent.glob("*.yaml"))


def _load_shipped(name):
    import importlib

    if name not in SUPERVISED_SCHEMAS:
        return load_train_config(config_path(name))
    module, cls = SUPERVISED_SCHEMAS[name].split(":")
    return load_config(config_path(name), schema=getattr(importlib.import_module(module), cls))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_hold_only_what_differs_from_the_defaults(name):
    import yaml

    written = yaml.safe_load(config_path(name).read_text())
    config = _load_shipped(name)
    defaults = _leaves(to_dict(type(config)()))
    same = [key for key, value in _leaves(written).items() if key != "problem" and defaults.get(key) == value]
    assert not same, f"{name} repeats defaults: {same}"


@pytest.mark.parametrize("problem", ["r2r", "touchdown", "map2seq"])
def test_a_problem_name_alone_gives_the_shipped_sample_config(problem, tmp_path):
    name = f"{problem}_sample.yaml"
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    assert load_train_config(config_path(name)) == load_train_config(empty, [f"problem={problem}"])
    # the Street View defaults differ from R2R's where the task needs it (Touchdown unrolls 20 steps)
    assert load_train_config(empty, [f"problem={problem}"]).learning.unroll_length == (12 if problem == "r2r" else 20)


def test_street_view_configs_saved_with_the_old_r2r_fields_still_load(tmp_path):
    from valan.problems.streetview.config import TouchdownConfig

    old = to_dict(TouchdownConfig())
    old["data"]["connectivity"], old["env"]["max_candidates"], old["agent"]["geometry_dim"] = "connectivity", 16, 32
    assert config_from_dict(old) == TouchdownConfig()  # what a valan 0.1 checkpoint's "config" holds
    with pytest.raises(InputError, match="unknown config key 'env.max_candidates'"):
        apply_overrides(TouchdownConfig(), ["env.max_candidates=8"])  # not a Street View setting


def test_saved_configs_with_renamed_keys_are_upgraded_before_loading():
    from valan.config import from_dict, upgrade_saved

    saved = {"training": {"steps": 5}, "run": {}}
    assert upgrade_saved(_RenamedSchema, saved) == {"run": {"total_steps": 5}}
    assert saved == {"training": {"steps": 5}, "run": {}}  # the caller's mapping is left alone
    assert from_dict(_RenamedSchema, upgrade_saved(_RenamedSchema, saved)).run.total_steps == 5
    # a key already at its new place wins over the old one
    both = {"training": {"steps": 5}, "run": {"total_steps": 9}}
    assert from_dict(_RenamedSchema, upgrade_saved(_RenamedSchema, both)).run.total_steps == 9
