"""``valan --help`` texts and ``valan --version``."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from valan.cli import COMMANDS, main


def help_of(capsys, words):
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare with single spaces


def test_no_command_help_prints_an_empty_default(capsys):
    texts = {words: help_of(capsys, list(words)) for words in COMMANDS}
    bad = [" ".join(w) for w, text in texts.items() if "(default: None)" in text or "(default: [])" in text
           or "(default: False)" in text or "%(default)" in text]
    assert bad == []
    # a default worth showing is shown, and one the help already words is not repeated
    assert "episodes stepped together (default: 16)" in texts[("predict",)]
    assert "seed of the random baseline (default: 0)" in texts[("evaluate", "r2r")]  # 0 says something
    assert "(default: the embedded configs/r2r_sample.yaml; with --resume: the run's saved config.yaml)" \
        in texts[("train",)] and "config.yaml) (default" not in texts[("train",)]


def test_supervised_trainers_state_how_long_the_default_run_takes(capsys):
    from valan.config import load_config
    from valan.configs import config_path
    from valan.problems.alignment.config import AlignmentConfig
    from valan.problems.discriminator.config import DiscriminatorConfig
    from valan.problems.sdr.config import SDRConfig

    for command, file, schema in (("train-discriminator", "discriminator.yaml", DiscriminatorConfig),
                                  ("pretrain-alignment", "alignment.yaml", AlignmentConfig),
                                  ("train-sdr", "sdr.yaml", SDRConfig)):
        steps = load_config(config_path(file), schema=schema).run.total_steps
        text = help_of(capsys, [command])
        assert f"configs/{file}: {steps} steps on the bundled sample, 3-10 min on 2 CPU cores" in text, command


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"valan {version('valan')}"
