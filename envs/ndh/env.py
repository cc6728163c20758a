"""The NDH environment: gymnasium ``valan/NDH-v0`` (``NDHEnv``) and its batched form (``BatchedNDHEnv``).

Navigation from dialog history on the Matterport3D graphs, built on the R2R environment (``valan.envs.r2r.env``):
the same dynamics, actions (0 = STOP, k = candidate slot k) and observation keys and shapes, so one follower
serves R2R and NDH. What differs:

- the input text (``instruction``) is the target and the dialog history with role separators
  (``valan.envs.ndh.dataset.encode_dialog``, newest turns kept), in the R2R vocabulary extended by the separators;
- the path type (``planner_path``, ``player_path`` or ``trusted_path``, default ``planner_path`` as in CVDN) gives
  the start (its first viewpoint; ``start_pano`` in test splits) and the goal that ``oracle_next_action``
  supervises towards (its last viewpoint); the start heading is ``start_pano.heading`` and the camera stays level;
- the ``distance`` and ``success`` rewards (``valan.envs.r2r.rewards``) measure the distance to the goal region,
  i.e. to the nearest ``end_panos`` viewpoint, in metres: each move earns the clipped progress towards the region,
  the ending action +4 within 3 m of it, else -4; ``ndtw`` scores the path so far against the path type's path;
- episodes are named by ``inst_idx`` (an int): ``reset(options={"episode_id": inst_idx})``, and finished-episode
  records carry ``inst_idx`` (``distance_to_goal``/``success`` there are to the path type's goal, as CVDN's
  ``nav_error``).

Test-split instances run (no reward, ``oracle_next_action`` STOP) but cannot be scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from valan.data import sample_path
from valan.envs.batched import BatchedEnv, SingleEpisodeEnv
from valan.envs.ndh.dataset import NDHEpisode, encode_dialog, load_ndh, with_separators
from valan.envs.r2r.dataset import R2REpisode
from valan.envs.r2r.env import DEFAULT_MAX_CANDIDATES, PathLike, R2RWorld, _open_connectivity, _Slots
from valan.envs.r2r.graph import Connectivity
from valan.envs.spaces import feature_store
from valan.errors import InputError
from valan.features.stores import R2R_VIEWS, FeatureStore, SyntheticFeatures
from valan.text import Vocabulary

DEFAULT_DATA = "ndh/NDH_sample_train.json"
DEFAULT_MAX_STEPS = 20  # CVDN's max_episode_len
DEFAULT_MAX_INSTRUCTION_LENGTH = 120


def r2r_view(episode: NDHEpisode, path_type: str) -> R2REpisode:
    """The NDH instance as the R2R world sees an episode: id ``inst_idx``, start and goal of the path type, the
    separator text as its instruction (for reading; the world encodes the dialog itself)."""
    path = episode.path(path_type) if episode.has_reference else (episode.start_viewpoint,)
    return R2REpisode(instr_id=episode.inst_idx, path_id=episode.inst_idx, scan=episode.scan, path=path,
                      heading=episode.start_heading, instruction=episode.text)


class NDHWorld(R2RWorld):
    """An R2R world over NDH instances (see the module docstring): dialog input text and a goal region.

    ``region`` is int64 ``(episodes, R)``: global indices of each instance's ``end_panos`` (padded by repeating
    the first; test instances hold their start).
    """

    id_key = "inst_idx"

    def __init__(self, episodes: Sequence[NDHEpisode], connectivity: Connectivity, vocab: Vocabulary,
                 path_type: str = "planner_path", max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES, scans: Sequence[str] | None = None):
        self.ndh_episodes, self.path_type = list(episodes), path_type
        super().__init__([r2r_view(ep, path_type) for ep in self.ndh_episodes], connectivity, with_separators(vocab),
                         max_instruction_length=max_instruction_length, max_candidates=max_candidates, scans=scans)
        regions = [ep.end_panos if ep.has_reference else (ep.start_viewpoint,) for ep in self.ndh_episodes]
        width = max(len(r) for r in regions)
        self.region = np.zeros((len(regions), width), np.int64)
        for row, (ep, region) in enumerate(zip(self.ndh_episodes, regions)):
            try:
                indices = [self.viewpoint_index.global_index(ep.scan, vp) for vp in region]
            except InputError as err:
                raise InputError(f"end_panos: {err}", record=f"inst_idx {ep.inst_idx}") from None
            self.region[row] = indices + indices[:1] * (width - len(indices))

    def encode_instruction(self, row: int) -> tuple[np.ndarray, int]:
        """The target and dialog history with separators (``encode_dialog``)."""
        ep = self.ndh_episodes[row]
        return encode_dialog(self.vocab, ep.target, ep.dialog_history, self.max_instruction_length)

    def goal_distance(self, viewpoints: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        """Metres from each viewpoint to the nearest viewpoint of its episode's goal region (``end_panos``)."""
        return self.distance(np.asarray(viewpoints)[:, None], self.region[episodes]).min(axis=1)

    @classmethod
    def from_sources(cls, data: PathLike | Sequence[PathLike] | None = None,
                     connectivity: PathLike | Connectivity | None = None, vocab: PathLike | Vocabulary | None = None,
                     split_episodes: Sequence[NDHEpisode] | None = None, **kwargs) -> "NDHWorld":
        """Load from NDH files; each ``None`` falls back to the bundled format sample (train), its graphs and the
        R2R vocabulary."""
        if data is not None and split_episodes is not None:
            raise ValueError("give either data files or split_episodes, not both")
        if split_episodes is None:
            files = [sample_path(DEFAULT_DATA)] if data is None else (
                [data] if isinstance(data, (str, Path)) else list(data))
            split_episodes = [ep for f in files for ep in load_ndh(f)]
        if not isinstance(connectivity, Connectivity):
            directory = sample_path("connectivity") if connectivity is None else connectivity
            connectivity = _open_connectivity(str(Path(directory).resolve()))
        if not isinstance(vocab, Vocabulary):
            vocab = Vocabulary.load(sample_path("train_vocab.txt") if vocab is None else vocab)
        return cls(split_episodes, connectivity, vocab, **kwargs)


def _ndh_slots(num_slots: int, data, connectivity, vocab, features: FeatureStore | None,
               split_episodes: Sequence[NDHEpisode] | None, path_type: str, reward: str, max_steps: int,
               max_instruction_length: int, max_candidates: int, include_features: bool,
               scans: Sequence[str] | None, history: bool, mirror: float = 0.0,
               seed: int = 0) -> tuple[_Slots, FeatureStore]:
    world = NDHWorld.from_sources(data, connectivity, vocab, split_episodes, path_type=path_type,
                                  max_instruction_length=max_instruction_length, max_candidates=max_candidates,
                                  scans=scans)
    features = feature_store(features, SyntheticFeatures(), R2R_VIEWS)  # a store, or its path
    return _Slots(world, num_slots, reward, max_steps, features if include_features else None, history, mirror,
                  seed), features


class NDHEnv(SingleEpisodeEnv):
    """One NDH instance at a time (gymnasium API). Arguments are ``R2REnv``'s (``data`` = NDH JSON files, default
    the bundled format sample's train split; ``split_episodes`` = loaded ``NDHEpisode``s) plus ``path_type``;
    ``max_steps`` defaults to 20 and ``max_instruction_length`` to 120 tokens. ``history`` is R2R's (the agent's
    own moves so far), not the dialog history, which is always in ``instruction``."""

    world: NDHWorld

    def __init__(self, data=None, connectivity=None, vocab=None, features: FeatureStore | None = None,
                 split_episodes: Sequence[NDHEpisode] | None = None, path_type: str = "planner_path",
                 reward: str = "distance", max_steps: int = DEFAULT_MAX_STEPS,
                 max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES, include_features: bool = False,
                 scans: Sequence[str] | None = None, history: bool = False, render_mode: str | None = None):
        super().__init__(*_ndh_slots(1, data, connectivity, vocab, features, split_episodes, path_type, reward,
                                     max_steps, max_instruction_length, max_candidates, include_features, scans,
                                     history),
                         render_mode=render_mode)


class BatchedNDHEnv(BatchedEnv):
    """``num_envs`` NDH instances stepped together for one actor: the contract of ``valan.envs.batched``.
    Arguments are ``NDHEnv``'s plus ``num_envs``, ``evaluation``, ``seed`` and ``mirror`` (``BatchedR2REnv``'s: the
    probability that an instance is seen mirrored left to right, its dialog's left/right words swapped)."""

    world: NDHWorld

    def __init__(self, num_envs: int, data=None, connectivity=None, vocab=None, features: FeatureStore | None = None,
                 split_episodes: Sequence[NDHEpisode] | None = None, path_type: str = "planner_path",
                 reward: str = "distance", max_steps: int = DEFAULT_MAX_STEPS,
                 max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES, include_features: bool = False,
                 scans: Sequence[str] | None = None, history: bool = False, evaluation: bool = False,
                 seed: int = 0, mirror: float = 0.0):
        super().__init__(*_ndh_slots(num_envs, data, connectivity, vocab, features, split_episodes, path_type,
                                     reward, max_steps, max_instruction_length, max_candidates, include_features,
                                     scans, history, mirror, seed), evaluation, seed)
