"""Config sections of the reinforcement-learning machinery: losses and optimizer (``learning``), the actor/learner
layout (``distributed``, read by ``valan.distributed``) and the run's budget and outputs (``run``).

Every navigation problem's config (:class:`valan.problems.config.TrainConfig`) holds these three sections; a
problem may change their defaults (e.g. Street View unrolls 20 steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from valan.config import require

LearningMode = Literal["mixed", "imitation", "rl", "student_forcing"]


@dataclass
class LearningConfig:
    """Losses and optimizer. Steps here are learner steps (one batch of ``batch_size`` unrolls)."""

    # imitation: teacher forcing; student_forcing: act by sampling, learn the oracle's actions; mixed: imitation
    # on teacher-forced unrolls, V-trace RL on the others; rl: V-trace only
    mode: LearningMode = "imitation"
    p_imitation: float = 0.5  # share of teacher-forced unrolls in "mixed" (VALAN: 0.5) and "student_forcing" modes
    rl_cost: float = 0.0  # student_forcing: weight of V-trace on the unrolls that sampled the policy (0: none)
    unroll_length: int = 12  # T (the unroll holds T + 1 steps, the first overlapping the previous unroll)
    batch_size: int = 16  # B, unrolls per learner step
    lr: float = 1e-3  # Adam learning rate
    lr_decay: Literal["none", "exponential"] = "none"
    lr_decay_rate: float = 0.5  # exponential: lr * rate ** (step / lr_decay_steps)
    lr_decay_steps: int = 10000
    # imitation's target puts this share of its mass uniformly over the step's allowed actions, the rest on the
    # oracle's (label smoothing, Szegedy et al. 2016); 0 (the default): the oracle's action alone
    label_smoothing: float = 0.0
    grad_clip: float = 10.0  # global gradient norm clip; 0 disables
    # AdamW's decoupled weight decay (Loshchilov & Hutter 2019): each step shrinks every parameter by lr * weight_decay
    # of itself, biases and embeddings included; 0 (the default) is plain Adam
    weight_decay: float = 0.0
    # torch.compile the agent's forward pass (learning and acting); needs a working compiler backend (on CPU a C++
    # compiler): without one, training runs eager after a one-line warning. Opt-in: compiling costs seconds to
    # minutes at start-up, and pays for long runs only (scripts/bench_learner_step.py measures it)
    compile: bool = False
    gamma: float = 0.95  # discount per action
    entropy_cost: float = 0.01
    baseline_cost: float = 0.5
    rho_bar: float = 1.0  # V-trace clip of the importance weight in the value target
    c_bar: float = 1.0  # V-trace clip of the trace coefficients
    pg_rho_bar: float = 1.0  # clip of the importance weight in the policy gradient
    curriculum: Literal["none", "constant", "adaptive"] = "none"
    curriculum_start: float = 0.2  # fraction of the easiest episodes in the initial pool
    curriculum_steps: int = 20000  # constant: env steps over which the pool widens linearly to all episodes
    curriculum_threshold: float = 0.5  # adaptive: widen the pool when the pool's success rate exceeds this

    def __post_init__(self) -> None:
        require(0.0 <= self.p_imitation <= 1.0, "learning.p_imitation must be in [0, 1]")
        require(self.rl_cost >= 0, "learning.rl_cost must be >= 0")
        require(self.unroll_length >= 1 and self.batch_size >= 1, "learning.unroll_length and batch_size must be >= 1")
        require(self.lr > 0 and self.lr_decay_steps > 0 and self.lr_decay_rate > 0, "learning.lr, lr_decay_* must be > 0")
        require(0.0 <= self.label_smoothing < 1.0, "learning.label_smoothing must be in [0, 1)")
        require(self.weight_decay >= 0, "learning.weight_decay must be >= 0 (0: plain Adam)")
        require(0.0 <= self.gamma <= 1.0, "learning.gamma must be in [0, 1]")
        require(min(self.rho_bar, self.c_bar, self.pg_rho_bar) > 0, "learning.rho_bar, c_bar, pg_rho_bar must be > 0")
        require(0.0 < self.curriculum_start <= 1.0, "learning.curriculum_start must be in (0, 1]")


@dataclass
class DistributedConfig:
    """SEED-RL layout: actors step environments, the learner batches inference and trains."""

    num_actors: int = 2
    envs_per_actor: int = 8  # environments each actor steps per inference call
    max_batch: int = 64  # most observations per inference batch
    max_wait_ms: float = 5.0  # an incomplete inference batch runs after this deadline
    queue_size: int = 8  # unrolls waiting for the trainer (backpressure beyond this)
    num_eval_actors: int = 1
    # where the learner's updates run (valan.distributed.trainer): "process" = a child process beside the learner's
    # inference (two cores on CPU), "thread" = a thread of the learner's process; "auto": process on CPU, thread on GPU
    trainer: Literal["auto", "thread", "process"] = "auto"
    # how actors send inference requests (valan.distributed.transport): "auto" = a Unix socket to the learner when
    # on its node, Ray calls otherwise; "ray" = always Ray calls
    transport: Literal["auto", "ray"] = "auto"
    ray_address: str | None = None  # None: local Ray instance; "auto" or "host:port": join a cluster

    def __post_init__(self) -> None:
        require(self.num_actors >= 1, "distributed.num_actors must be >= 1 (acting runs in actor processes)")
        require(min(self.envs_per_actor, self.max_batch, self.queue_size, self.num_eval_actors) >= 1,
                "distributed.envs_per_actor, max_batch, queue_size and num_eval_actors must be >= 1")
        require(self.max_wait_ms >= 0, "distributed.max_wait_ms must be >= 0")


@dataclass
class RunConfig:
    """Budget, logging, checkpoints. A run stops at whichever budget is reached first."""

    total_env_steps: int = 60000
    total_minutes: float = 0.0  # wall-clock minutes of training in this invocation (a resume starts anew); 0: none
    eval_every_env_steps: int = 20000
    checkpoint_every_env_steps: int = 20000
    keep_last: int = 3
    logdir: str = "runs/train"  # problems set their own (e.g. runs/r2r_sample)
    seed: int = 0
    # the eval split whose problem.select_metric picks checkpoints/BEST.pt; None: the first eval split whose
    # name contains "unseen", else the first eval split
    select_split: str | None = None

    def __post_init__(self) -> None:
        require(self.total_env_steps >= 1 and self.keep_last >= 1, "run.total_env_steps and keep_last must be >= 1")
        require(min(self.total_minutes, self.eval_every_env_steps, self.checkpoint_every_env_steps) >= 0,
                "run.total_minutes, eval_every_env_steps and checkpoint_every_env_steps must be >= 0")
