"""A Touchdown / map2seq follower in PyTorch (Chen et al. 2019's RConcat with text attention, as in VALAN).

Per step ``t`` (for each of ``B`` episodes; the blocks are those of ``valan.agents.layers``)::

    text      = InstructionEncoder(instruction)                      (L, H)  encoded once per episode
    views     = roll(features[panorama], heading, pano_yaw)          (V, D)  agent's heading at view V // 2
    visual    = tanh(W_v flatten(tanh(W_p views) + position))        (H)     egocentric layout kept by position
    context   = attend(h_{t-1}, text)                                (H)     text attention (top layer's h)
    h_t       = StackedLSTMCell([visual; context; action_{t-1} + turn_t; time_t; links_t])
    f_t       = tanh(W [h_t; context; visual])
    logits    = W_a f_t                     (A = 4 discrete actions, or 18 panoramic bins + STOP)
    value     = MLP(f_t)

``action_{t-1}`` embeds the previous action (``num_actions`` = none yet), ``turn_t`` projects how far it turned
the agent (``obs["heading_change"]`` / 180 degrees: the turn taken at a junction, or the bend of the street a
FORWARD followed; map2seq's heading delta, Schumann & Riezler 2022), ``time_t`` embeds the time step and
``links_t`` the junction: an embedding of the number of outgoing links (street, intersection or dead end;
map2seq's junction type) plus a projection of the link layout (which 45-degree sectors around the heading hold a
link, ``obs["link_layout"]``), so the agent knows whether LEFT turns into a street and where FORWARD leads.
Checkpoints from before the layout or the turn load with zero projections for them (they act as they did).
Visual features are read by index from ``feature_table`` (``(N, V, D)``, unrolled, a non-persistent buffer:
checkpoints do not carry it) and rolled with ``valan.envs.streetview.views`` (the environment's definition),
or taken from ``obs["features"]`` when the observation has them (already rolled).

With ``visual="none"`` the model has no visual pathway (no ``views``/``visual`` terms: the core reads
``[context; action_{t-1}; time_t; links_t]`` and ``f_t = tanh(W [h_t; context])``) and never reads features: the
choice when they carry no visual information. Loading weights built with the other choice raises a one-line
``InputError``.

The recurrent state is ``(h, c, text, text_mask)``: LSTM states ``(B, layers, H)`` and the encoded instruction
``(B, L, H)`` with its mask. The instruction is encoded at episode starts and kept in the state
(``instruction_bank``), so acting (``T = 1``) encodes it once per episode; with gradients enabled (learning)
step 0 is encoded too, so the encoder learns from every step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from valan.agents.base import AgentOutput
from valan.agents.layers import (Attention, InstructionEncoder, StackedLSTMCell, VisualEncoder, check_visual_weights,
                                 instruction_bank)
from valan.envs.streetview.navigation import LINK_SECTORS
from valan.envs.streetview.views import rolled_features

MAX_LINKS = 5  # out-degrees above this share one embedding (the full graph's maximum is 5)

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class TouchdownFollower(nn.Module):
    """See the module docstring.

    Args:
        vocab_size: instruction vocabulary size.
        feature_table: ``(N, V, D)`` unrolled features of every panorama (``None``: give ``feature_dim`` and
            ``views``, and pass features in observations or call ``set_feature_table`` later).
        num_actions: 4 (discrete) or 19 (panoramic).
        headings: views per pitch row of the features (default ``V``: a single row).
        max_steps: time steps with their own embedding (later steps share the last one).
        instruction_dropout: dropout on the instruction's word embeddings.
        word_dropout: share of the instruction's words replaced by ``<UNK>`` in training mode.
        visual: ``"features"`` or ``"none"`` (no visual pathway; see the module docstring).
    """

    def __init__(self, vocab_size: int, feature_table: np.ndarray | torch.Tensor | None, num_actions: int = 4,
                 feature_dim: int | None = None, views: int | None = None, headings: int | None = None,
                 max_instruction_length: int = 300, max_steps: int = 55, embed_dim: int = 64, hidden_dim: int = 128,
                 core_layers: int = 1, view_dim: int = 32, action_embed_dim: int = 16, time_embed_dim: int = 16,
                 dropout: float = 0.0, instruction_dropout: float = 0.0, word_dropout: float = 0.0,
                 visual: str = "features"):
        super().__init__()
        if visual not in ("features", "none"):
            raise ValueError(f"visual must be 'features' or 'none', got {visual!r}")
        self.visual_mode = visual
        uses_features = visual == "features"
        if uses_features and feature_table is None and (feature_dim is None or views is None):
            raise ValueError("give a feature_table, or feature_dim and views")
        if feature_table is not None:
            views, feature_dim = int(feature_table.shape[-2]), int(feature_table.shape[-1])
        views, feature_dim = views or 0, feature_dim or 0
        self.views, self.feature_dim = views, feature_dim
        self.headings = headings or views
        self.num_actions, self.max_steps = num_actions, max_steps
        self.hidden_dim, self.core_layers, self.max_instruction_length = hidden_dim, core_layers, max_instruction_length
        self.register_buffer("feature_table", torch.zeros(0, views, feature_dim), persistent=False)
        if feature_table is not None and uses_features:
            self.set_feature_table(feature_table)

        self.instruction_encoder = InstructionEncoder(vocab_size, embed_dim, hidden_dim, dropout=instruction_dropout,
                                                      word_dropout=word_dropout)
        if uses_features:
            self.view_encoder = VisualEncoder(feature_dim, view_dim)
            self.view_position = nn.Parameter(torch.zeros(views, view_dim))
            self.visual = nn.Linear(views * view_dim, hidden_dim)
        visual_width = hidden_dim if uses_features else 0
        self.action_embedding = nn.Embedding(num_actions + 1, action_embed_dim)
        self.time_embedding = nn.Embedding(max_steps + 1, time_embed_dim)
        self.links_embedding = nn.Embedding(MAX_LINKS + 1, action_embed_dim)
        self.layout_projection = nn.Linear(LINK_SECTORS, action_embed_dim)
        self.turn_projection = nn.Linear(1, action_embed_dim)
        self.text_attention = Attention(hidden_dim, hidden_dim)
        core_input = visual_width + hidden_dim + 2 * action_embed_dim + time_embed_dim
        self.core = StackedLSTMCell(core_input, hidden_dim, core_layers)
        self.dropout = nn.Dropout(dropout)
        self.state_projection = nn.Linear(2 * hidden_dim + visual_width, hidden_dim)
        self.policy_head = nn.Linear(hidden_dim, num_actions)
        self.value_head = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    def set_feature_table(self, table: np.ndarray | torch.Tensor) -> None:
        """Replace the ``(N, V, D)`` feature table (kept on the module's device, float32; ignored without a
        visual pathway)."""
        if self.visual_mode == "none":
            return
        table = torch.as_tensor(table, dtype=torch.float32)
        if table.ndim != 3 or tuple(table.shape[1:]) != (self.views, self.feature_dim):
            raise ValueError(f"feature table must be (N, {self.views}, {self.feature_dim}), got {tuple(table.shape)}")
        self.feature_table = table.to(self.feature_table.device)

    def initial_state(self, batch_size: int) -> State:
        p = self.policy_head.weight
        zeros = torch.zeros(batch_size, self.core_layers, self.hidden_dim, dtype=p.dtype, device=p.device)
        return (zeros, zeros.clone(),
                torch.zeros(batch_size, self.max_instruction_length, self.hidden_dim, dtype=p.dtype, device=p.device),
                torch.zeros(batch_size, self.max_instruction_length, dtype=torch.bool, device=p.device))

    def panorama_views(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rolled view features ``(T, B, V, D)``: the observation's, or the table rows of ``obs["panorama"]``."""
        if "features" in obs:
            return obs["features"].float()
        unrolled = self.feature_table[obs["panorama"].long()]
        return rolled_features(unrolled, obs["heading"].float(), obs["pano_yaw"].float(), self.headings)

    def forward(self, obs: dict[str, torch.Tensor], state: State, first: torch.Tensor) -> tuple[AgentOutput, State]:
        first = first.bool()
        h, c, text, text_mask = state
        if self.visual_mode == "features":
            views = self.view_encoder(self.panorama_views(obs)) + self.view_position  # (T, B, V, view_dim)
            visual = torch.tanh(self.visual(views.flatten(-2))).unbind(0)  # T x (B, H)
        previous = (self.action_embedding(obs["previous_action"].long().clamp(0, self.num_actions))
                    + self.turn_projection(obs["heading_change"].float()[..., None] / 180.0))
        time = self.time_embedding(obs["time_step"].long().clamp(0, self.max_steps))
        links = (self.links_embedding(obs["num_links"].long().clamp(0, MAX_LINKS))
                 + self.layout_projection(obs["link_layout"].float()))
        texts, text_masks = instruction_bank(self.instruction_encoder, obs["instruction"], obs["instruction_length"],
                                             first, text, text_mask)

        features = []
        for t in range(first.shape[0]):
            keep = (~first[t]).to(h.dtype)[:, None, None]
            h, c = h * keep, c * keep
            context = self.text_attention(h[:, -1], texts[t], text_masks[t])
            seen = [visual[t]] if self.visual_mode == "features" else []
            x, h, c = self.core(torch.cat([*seen, context, previous[t], time[t], links[t]], dim=-1), h, c)
            features.append(torch.cat([x, context, *seen], dim=-1))
        f = torch.tanh(self.state_projection(self.dropout(torch.stack(features))))  # (T, B, H)
        return AgentOutput(logits=self.policy_head(f), values=self.value_head(f).squeeze(-1)), (h, c, texts[-1],
                                                                                                text_masks[-1])

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:
        check_visual_weights(state_dict, prefix, "view_encoder.", self.visual_mode)
        for layer in ("layout_projection", "turn_projection"):  # absent from older checkpoints
            for name, tensor in getattr(self, layer).named_parameters():
                state_dict.setdefault(f"{prefix}{layer}.{name}", torch.zeros_like(tensor))
        super()._load_from_state_dict(state_dict, prefix, *args)
