"""A toy instruction-following problem for the distributed-training tests (no data files, trains in seconds).

The graph is a tree of depth ``DEPTH`` with ``BRANCHES`` children per node. An instruction names the branch to
take at every level, then says STOP: token ``BRANCH_TOKEN + b`` means "take branch b" (action ``b``, 1-based),
``STOP_TOKEN`` means "stop here" (action 0). An episode succeeds when the agent stops at the leaf the
instruction names. A uniformly random policy succeeds with probability ``(1 / (BRANCHES + 1)) ** (DEPTH + 1)``.

Observations follow the R2R contract's names where they apply (``instruction``, ``time_step``,
``candidate_mask``, ``oracle_next_action``); the batched env follows the BatchedR2REnv contract
(``reset() -> obs, infos``; ``step(actions) -> obs, reward, done, infos`` with automatic reset,
``infos["finished"]`` listing ended episodes, inactive slots once an evaluation split is exhausted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from valan.agents.base import AgentOutput, mask_logits
from valan.problems.config import TrainConfig
from valan.learning.unroll import Unroll
from valan.problems import Problem

DEPTH = 2
BRANCHES = 3
NUM_ACTIONS = BRANCHES + 1
STOP_TOKEN = 3
BRANCH_TOKEN = 3  # token of branch b is BRANCH_TOKEN + b, b = 1..BRANCHES
VOCAB = BRANCH_TOKEN + BRANCHES + 1
MAX_STEPS = DEPTH + 2
INSTRUCTION_LENGTH = DEPTH + 1


def all_instructions() -> list[tuple[int, ...]]:
    """Every branch sequence, in a fixed order (the evaluation split)."""
    out = [()]
    for _ in range(DEPTH):
        out = [p + (b,) for p in out for b in range(1, BRANCHES + 1)]
    return out


@dataclass
class _Episode:
    instr_id: str
    branches: tuple[int, ...]
    taken: list[int]
    t: int = 0


class ToyBatchedEnv:
    """``num_envs`` toy episodes stepped together; see the module docstring."""

    def __init__(self, num_envs: int, seed: int, evaluation: bool):
        self.num_envs = num_envs
        self.evaluation = evaluation
        self.rng = np.random.default_rng(seed)
        self._queue = [(f"{i}", b) for i, b in enumerate(all_instructions())] if evaluation else None
        self.episodes: list[_Episode | None] = [None] * num_envs

    def _next_episode(self) -> _Episode | None:
        if self.evaluation:
            if not self._queue:
                return None
            instr_id, branches = self._queue.pop(0)
            return _Episode(instr_id, branches, [])
        branches = tuple(int(b) for b in self.rng.integers(1, BRANCHES + 1, size=DEPTH))
        return _Episode("train", branches, [])

    @property
    def active(self) -> np.ndarray:
        """Slots running an episode (evaluation: idle once the split is exhausted)."""
        return np.array([e is not None for e in self.episodes])

    @property
    def finished(self) -> bool:
        return not self.active.any()

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.episodes = [self._next_episode() for _ in range(self.num_envs)]
        return self._observe(), {"active": self.active, "finished": []}

    def _oracle(self, e: _Episode) -> int:
        on_path = tuple(e.taken) == e.branches[: len(e.taken)]
        if on_path and len(e.taken) < DEPTH:
            return e.branches[len(e.taken)]
        return 0

    def _observe(self) -> dict[str, np.ndarray]:
        k = self.num_envs
        obs = {
            "instruction": np.zeros((k, INSTRUCTION_LENGTH), np.int64),
            "time_step": np.zeros(k, np.int64),
            "candidate_mask": np.ones((k, NUM_ACTIONS), np.int8),
            "oracle_next_action": np.zeros(k, np.int64),
        }
        for i, e in enumerate(self.episodes):
            if e is None:
                continue
            obs["instruction"][i] = [BRANCH_TOKEN + b for b in e.branches] + [STOP_TOKEN]
            obs["time_step"][i] = e.t
            if len(e.taken) >= DEPTH:  # at a leaf: only STOP
                obs["candidate_mask"][i, 1:] = 0
            obs["oracle_next_action"][i] = self._oracle(e)
        return obs

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, Any]]:
        reward = np.zeros(self.num_envs, np.float32)
        done = np.zeros(self.num_envs, bool)
        finished: list[dict[str, Any]] = []
        for i, e in enumerate(self.episodes):
            if e is None:
                continue
            a = int(actions[i])
            e.t += 1
            if a == 0 or e.t >= MAX_STEPS:
                success = a == 0 and tuple(e.taken) == e.branches
                reward[i] = 1.0 if success else 0.0
                done[i] = True
                finished.append({"slot": i, "instr_id": e.instr_id, "trajectory": list(e.taken), "success": success})
                self.episodes[i] = self._next_episode()
            else:
                e.taken.append(a)
        return self._observe(), reward, done, {"active": self.active, "finished": finished}


class ToyAgent(nn.Module):
    """Embeds the instruction token at the current time step into an LSTM cell; masked logits, value head."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(VOCAB, hidden)
        self.core = nn.LSTMCell(hidden, hidden)
        self.policy = nn.Linear(hidden, NUM_ACTIONS)
        self.value = nn.Linear(hidden, 1)

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(batch_size, self.hidden), torch.zeros(batch_size, self.hidden)

    def forward(self, obs: dict[str, torch.Tensor], state, first: torch.Tensor):
        h, c = state
        outputs = []
        for t in range(first.shape[0]):
            keep = (~first[t]).float()[:, None]
            h, c = h * keep, c * keep
            index = obs["time_step"][t].clamp(max=INSTRUCTION_LENGTH - 1)[:, None]
            token = obs["instruction"][t].gather(1, index)[:, 0]
            h, c = self.core(self.embed(token), (h, c))
            outputs.append(h)
        features = torch.stack(outputs)
        logits = mask_logits(self.policy(features), obs["candidate_mask"].bool())
        return AgentOutput(logits=logits, values=self.value(features)[..., 0]), (h, c)


class ToyProblem(Problem):
    name = "toy"
    metric_names = ("sr",)
    select_metric = "sr"
    prediction_key = "instr_id"

    def make_env(self, config: TrainConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> ToyBatchedEnv:
        return ToyBatchedEnv(num_envs, seed, evaluation)

    def feature_table(self, config: TrainConfig) -> np.ndarray:
        return np.zeros((1, 1, 1), np.float32)

    def vocabulary(self, config: TrainConfig):
        from valan.text import SPECIAL_TOKENS, Vocabulary

        return Vocabulary([*SPECIAL_TOKENS, *(f"branch{b}" for b in range(VOCAB - len(SPECIAL_TOKENS)))])

    def make_agent(self, config: TrainConfig, feature_table=None) -> ToyAgent:
        return ToyAgent()

    def loss(self, agent: torch.nn.Module, unroll: Unroll, config: TrainConfig):
        from valan.learning.losses import agent_loss

        return agent_loss(agent, unroll, config.learning)

    def evaluate(self, config: TrainConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        instructions = dict((f"{i}", b) for i, b in enumerate(all_instructions()))
        hits = [tuple(p["trajectory"]) == instructions[p["instr_id"]] for p in predictions]
        return {"sr": float(np.mean(hits)) if hits else 0.0, "episodes": float(len(hits))}


def toy_config(**sections: dict[str, Any]) -> TrainConfig:
    """A small TrainConfig for the toy problem; ``sections`` override fields per section."""
    config = TrainConfig(problem="toy")
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


class SlowToyProblem(ToyProblem):
    """The toy problem made slow enough to hit with a fault: each learner step takes ``train_delay_s`` seconds more,
    each evaluation env step ``eval_delay_s``, and evaluation envs touch the file ``marker`` (when given) as they
    start, so that a test can kill an eval actor in the middle of an evaluation."""

    def __init__(self, marker: str | None = None, eval_delay_s: float = 0.0, train_delay_s: float = 0.0):
        self.marker, self.eval_delay_s, self.train_delay_s = marker, eval_delay_s, train_delay_s

    def loss(self, agent: torch.nn.Module, unroll: Unroll, config: TrainConfig):
        import time

        time.sleep(self.train_delay_s)
        return super().loss(agent, unroll, config)

    def make_env(self, config: TrainConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> ToyBatchedEnv:
        import time
        from pathlib import Path

        env = ToyBatchedEnv(num_envs, seed, evaluation)
        if evaluation:
            if self.marker is not None:
                Path(self.marker).touch()
            step = env.step

            def slow_step(actions):
                time.sleep(self.eval_delay_s)
                return step(actions)

            env.step = slow_step
        return env
