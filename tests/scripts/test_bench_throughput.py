"""scripts/bench_throughput.py: its in-process variants (naive loop, compute bounds) run a tiny config and report
the summary keys with positive rates; the Ray variants are what the full benchmark adds."""

from __future__ import annotations

import os

import pytest

from helpers.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_throughput")


def test_naive_loop_and_bounds_of_a_tiny_config(bench, one_torch_thread):
    base = bench.bench_config(None, ["learning.batch_size=4", "learning.unroll_length=3"], "cpu")
    assert base.data.eval == {} and base.run.eval_every_env_steps == 0  # the benchmark never evaluates
    lines = []
    summary = bench.run_benchmark(base, [(2, 2)], ("naive",), warmup_s=0.0, window_s=0.3, repeats=1,
                                  log=lines.append)
    cores = len(os.sched_getaffinity(0))
    for key in ("naive_env_steps_per_s", "compute_bound_env_steps_per_s", "all_cores_bound_env_steps_per_s"):
        assert summary[key] > 0, key
    assert summary["all_cores_bound_env_steps_per_s"] == pytest.approx(summary["compute_bound_env_steps_per_s"]
                                                                       * cores, rel=1e-3, abs=0.2)
    assert summary["naive_learner_steps"] >= 1
    assert summary["central_env_steps_per_s"] is None and summary["central_over_naive"] is None  # not run
    assert summary["layouts"]["2x2"]["num_actors"] == 2 and summary["batch_size"] == 4
    assert len(lines) == 3  # bound before, naive, bound after


def test_rounds_repeat_every_measurement_and_report_medians(bench, one_torch_thread):
    base = bench.bench_config(None, ["learning.batch_size=4", "learning.unroll_length=3"], "cpu")
    lines = []
    summary = bench.run_benchmark(base, [(2, 2)], ("naive",), warmup_s=0.0, window_s=0.2, repeats=1,
                                  log=lines.append, rounds=3)
    assert len(lines) == 7  # a bound, then per round: naive, bound
    per_round = summary["per_round"]
    assert len(per_round["naive"]) == 3 and len(per_round["all_cores_bound"]) == 3
    assert len(summary["compute_bound_before_after"]) == 4
    assert summary["naive_env_steps_per_s"] == pytest.approx(sorted(per_round["naive"])[1], abs=0.1)
    assert summary["all_cores_bound_env_steps_per_s"] == pytest.approx(sorted(per_round["all_cores_bound"])[1],
                                                                       abs=0.1)
    assert summary["rounds"] == 3


def test_cuda_config_uses_real_size_features_and_the_visual_pathway(bench):
    base = bench.bench_config(None, [], "cuda")
    assert base.data.synthetic_dim == 2048 and base.agent.visual == "features"


def test_layout_parsing(bench):
    assert bench.parse_layout("8x2") == (8, 2)
    with pytest.raises(Exception, match="actors x envs"):
        bench.parse_layout("eight")
