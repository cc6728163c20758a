"""Learning test: without a visual pathway the R2R follower generalises to held-out scenes; reading synthetic
features, which identify viewpoints and carry no visual information, it memorises the training scenes instead.

Each toy "scene" is one decision: a start viewpoint with four neighbours, roughly ahead, right, behind and left
of the agent (a per-scene rotation of up to 30 degrees), and the instruction "go <direction>". The rule (the word
names the neighbour at that relative heading) holds in every scene, so language and geometry alone solve held-out
scenes. Every viewpoint has its own random feature vectors, as synthetic features do, so a model that reads them
can also fit the training scenes by recognising the target's view, a shortcut that fails on held-out scenes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from valan.agents.r2r_follower import R2RFollower

NEIGHBOURS = 4
GO, FIRST_DIRECTION = 3, 4  # token ids: "go", then "ahead", "right", "back", "left"
VIEWS, FEATURE_DIM = 36, 32


def scenes(count: int, first_viewpoint: int, rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Observations ``(1, count, ...)`` of ``count`` scenes (viewpoints ``first_viewpoint`` onwards) and the
    oracle's action per scene (slot 1 + the named direction)."""
    rotation = rng.uniform(-math.pi / 6, math.pi / 6, count)
    target = rng.integers(0, NEIGHBOURS, count)
    heading = rotation[:, None] + np.arange(NEIGHBOURS)[None] * math.pi / 2  # radians clockwise, relative
    geometry = np.zeros((count, 1 + NEIGHBOURS, 5), np.float32)  # sin/cos heading, sin/cos elevation, metres
    geometry[:, 1:, 0], geometry[:, 1:, 1], geometry[:, 1:, 3], geometry[:, 1:, 4] = (
        np.sin(heading), np.cos(heading), 1.0, 2.0)
    view = np.zeros((count, 1 + NEIGHBOURS), np.int64)
    view[:, 1:] = 12 + np.round(heading / (math.pi / 6)).astype(np.int64) % 12  # the level row facing it
    mask = np.zeros((count, 1 + NEIGHBOURS), np.int8)
    mask[:, 1:] = 1
    instruction = np.zeros((count, 80), np.int64)
    instruction[:, 0], instruction[:, 1] = GO, FIRST_DIRECTION + target
    obs = {"instruction": instruction, "instruction_length": np.full(count, 2),
           "viewpoint": first_viewpoint + np.arange(count), "candidate_geometry": geometry, "candidate_view": view,
           "candidate_mask": mask, "previous_action_geometry": np.zeros((count, 5), np.float32)}
    return {k: torch.as_tensor(v)[None] for k, v in obs.items()}, torch.as_tensor(1 + target)


def accuracy(agent: R2RFollower, obs: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
    first = torch.ones(1, len(labels), dtype=torch.bool)
    with torch.no_grad():
        out, _ = agent(obs, agent.initial_state(len(labels)), first)
    return float((out.logits[0].argmax(-1) == labels).float().mean())


@pytest.mark.parametrize("visual", ["none", "features"])
def test_only_the_agent_without_vision_generalises_to_held_out_scenes(visual, one_torch_thread):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    train_scenes, held_out_scenes = 24, 200
    table = torch.randn(train_scenes + held_out_scenes, VIEWS, FEATURE_DIM)  # one random vector per view
    train, held_out = scenes(train_scenes, 0, rng), scenes(held_out_scenes, train_scenes, rng)
    agent = R2RFollower(FIRST_DIRECTION + NEIGHBOURS, table, embed_dim=16, hidden_dim=32, core_layers=1,
                        geometry_dim=8, visual=visual)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2)
    first = torch.ones(1, train_scenes, dtype=torch.bool)
    for _ in range(150):
        out, _ = agent(train[0], agent.initial_state(train_scenes), first)
        loss = torch.nn.functional.cross_entropy(out.logits[0], train[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert accuracy(agent, *train) == 1.0  # both fit the training scenes
    chance = 1 / NEIGHBOURS
    if visual == "none":
        assert accuracy(agent, *held_out) > 0.9
    else:
        assert accuracy(agent, *held_out) < chance + 0.2  # it memorised the training viewpoints
