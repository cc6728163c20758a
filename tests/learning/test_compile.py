"""learning.compile: the agent is compiled in place when a compiler works, and stays eager with one line of
warning when none does."""

from __future__ import annotations

import pytest
import torch

from valan.learning.config import LearningConfig
from valan.learning.step import compile_agent


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def test_compile_is_opt_in():
    assert LearningConfig().compile is False
    model = _model()
    assert compile_agent(model, enabled=False) is False
    assert model._compiled_call_impl is None


def test_without_a_compiler_training_runs_eager_after_one_line_of_warning(monkeypatch, capsys):
    def no_compiler(*args, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\n(details...)")
        return fail

    monkeypatch.setattr(torch, "compile", no_compiler)
    model = _model()
    x = torch.randn(3, 4)
    expected = model(x)
    assert compile_agent(model, enabled=True) is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "learning.compile" in err and "No working C++ compiler" in err
    assert torch.equal(model(x), expected)


@pytest.mark.slow
def test_compiled_agent_computes_the_same_and_keeps_its_parameter_names(one_torch_thread):
    model, reference = _model(), _model()
    x = torch.randn(5, 4)
    if not compile_agent(model, enabled=True):
        pytest.skip("torch.compile does not work on this machine")
    assert list(model.state_dict()) == list(reference.state_dict())
    torch.testing.assert_close(model(x), reference(x))
    model(x).sum().backward()  # gradients flow through the compiled forward
    assert all(p.grad is not None for p in model.parameters())
