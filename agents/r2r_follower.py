"""The VALAN R2R follower in PyTorch: an instruction-following agent for the R2R environment.

Per step ``t`` (for each of ``B`` episodes; the blocks are those of ``valan.agents.layers``)::

    text       = InstructionEncoder(instruction)                   (L, H)   encoded once per episode
    views      = VisualEncoder(features[viewpoint])                (36, H)  the current panorama
    pooled     = attend(f_{t-1}, views)                            (H)      attention-pooled panorama
    h_t        = StackedLSTMCell([pooled; geometry(previous_action); f_{t-1}])    input feeding
    text_ctx   = attend(h_t, text)                                 text attention
    visual_ctx = attend(text_ctx, views)                           visual attention
    f_t        = tanh(W [h_t; text_ctx; visual_ctx])
    cand_k     = W_c [views[candidate_view_k]; geometry(candidate_geometry_k)] (+ a learned STOP vector, slot 0)
    logit_k    = f_t . cand_k / sqrt(H)        masked by candidate_mask;      value = MLP(f_t)
    progress   = tanh(w_p . f_t)               with progress_monitor=True only (Ma et al. 2019): the share of
                                               the distance to the goal made good, learned from obs["progress"]

``geometry`` embeds the 5 geometry features (relative heading and elevation as sin/cos, distance in metres).
Options (off by default; docs/unseen.md has their measurements): ``visited=True`` adds a learned "been there"
vector to the candidates the episode has already visited (``obs["candidate_visited"]``); ``odometry=True`` makes
the core also read an embedding of ``obs["odometry"]`` (metres walked and the start's position in the agent's
frame, in units of ``ODOMETRY_SCALE`` metres) beside the previous action; ``progress_monitor=True`` adds the
progress head below.
Visual features are read by index from ``feature_table`` (``(N, 36, D)``, a non-persistent buffer: checkpoints
do not carry it) or, when the observation has them, from ``obs["features"]`` ``(36, D)``.

With ``visual="none"`` the model has no visual pathway (no ``views``, ``pooled``, ``visual_ctx``, no candidate
views): it acts on language and geometry alone, ``h_t = core([geometry(previous_action); f_{t-1}])``,
``f_t = tanh(W [h_t; text_ctx])``, ``cand_k = W_c geometry(candidate_geometry_k)``, and never reads features. Use
it when the features carry no visual information (synthetic ones identify viewpoints, so a model that reads them
memorises the training scans). A checkpoint's weights show which pathway it was built with; loading it into a
model built with the other raises a one-line ``InputError``.

The recurrent state is ``(h, c, f, text, text_mask)``: LSTM states ``(B, layers, H)``, the attentional state
``f`` ``(B, H)`` and the encoded instruction ``(B, L, H)`` with its mask ``(B, L)``. The instruction is encoded
at episode starts (``first``) and kept in the state (``instruction_bank``), so acting (``T = 1`` under
``torch.no_grad``/``inference_mode``) never re-encodes it mid-episode. With gradients enabled (learning), step 0
is re-encoded as well, so the encoder is trained through every step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from valan.agents.base import AgentOutput, mask_logits
from valan.agents.layers import (Attention, InstructionEncoder, StackedLSTMCell, VisualEncoder, check_visual_weights,
                                 instruction_bank)
from valan.envs.r2r.geometry import GEOMETRY_DIM, ODOMETRY_DIM

ODOMETRY_SCALE = 10.0  # metres per unit of the odometry embedding's input (R2R paths are ~10 m long)

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class R2RFollower(nn.Module):
    """See the module docstring. ``feature_table``: ``(N, views, D)`` features of every global viewpoint."""

    def __init__(self, vocab_size: int, feature_table: np.ndarray | torch.Tensor | None, feature_dim: int | None = None,
                 max_instruction_length: int = 80, embed_dim: int = 64, hidden_dim: int = 128, core_layers: int = 2,
                 geometry_dim: int = 32, dropout: float = 0.0, instruction_dropout: float = 0.0,
                 word_dropout: float = 0.0, visual: str = "features", visited: bool = False, odometry: bool = False,
                 progress_monitor: bool = False):
        super().__init__()
        if visual not in ("features", "none"):
            raise ValueError(f"visual must be 'features' or 'none', got {visual!r}")
        self.visual_mode = visual
        uses_features = visual == "features"
        if uses_features and feature_table is None and feature_dim is None:
            raise ValueError("give a feature_table or a feature_dim")
        feature_dim = int(feature_table.shape[-1]) if feature_table is not None else (feature_dim or 0)
        self.hidden_dim, self.core_layers = hidden_dim, core_layers
        self.max_instruction_length, self.feature_dim = max_instruction_length, feature_dim
        self.register_buffer("feature_table", torch.zeros(0, 0, feature_dim), persistent=False)
        if feature_table is not None and uses_features:
            self.set_feature_table(feature_table)

        self.instruction_encoder = InstructionEncoder(vocab_size, embed_dim, hidden_dim, dropout=instruction_dropout,
                                                      word_dropout=word_dropout)
        self.geometry = nn.Sequential(nn.Linear(GEOMETRY_DIM, geometry_dim), nn.Tanh())
        self.odometry = (nn.Sequential(nn.Linear(ODOMETRY_DIM, geometry_dim), nn.Tanh()) if odometry else None)
        if uses_features:
            self.visual_encoder = VisualEncoder(feature_dim, hidden_dim)
            self.view_pooling = Attention(hidden_dim, hidden_dim)
            self.visual_attention = Attention(hidden_dim, hidden_dim)
        views = hidden_dim if uses_features else 0  # width of the visual inputs (pooled panorama, contexts, views)
        self.core = StackedLSTMCell(views + hidden_dim + geometry_dim * (2 if odometry else 1), hidden_dim, core_layers)
        self.text_attention = Attention(hidden_dim, hidden_dim)
        self.state_projection = nn.Linear(2 * hidden_dim + views, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.candidate_projection = nn.Linear(views + geometry_dim, hidden_dim)
        self.stop_embedding = nn.Parameter(torch.zeros(hidden_dim))
        self.visited_embedding = nn.Parameter(torch.zeros(hidden_dim)) if visited else None
        self.value_head = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        self.progress_head = nn.Linear(hidden_dim, 1) if progress_monitor else None

    def set_feature_table(self, table: np.ndarray | torch.Tensor) -> None:
        """Replace the ``(N, views, D)`` feature table (kept on the module's device, float32; ignored without a
        visual pathway)."""
        if self.visual_mode == "none":
            return
        table = torch.as_tensor(table, dtype=torch.float32)
        if table.ndim != 3 or table.shape[-1] != self.feature_dim:
            raise ValueError(f"feature table must be (N, views, {self.feature_dim}), got {tuple(table.shape)}")
        self.feature_table = table.to(self.feature_table.device)

    def initial_state(self, batch_size: int) -> State:
        p = self.state_projection.weight
        zeros = lambda *shape: torch.zeros(*shape, dtype=p.dtype, device=p.device)  # noqa: E731
        return (zeros(batch_size, self.core_layers, self.hidden_dim), zeros(batch_size, self.core_layers, self.hidden_dim),
                zeros(batch_size, self.hidden_dim), zeros(batch_size, self.max_instruction_length, self.hidden_dim),
                torch.zeros(batch_size, self.max_instruction_length, dtype=torch.bool, device=p.device))

    def forward(self, obs: dict[str, torch.Tensor], state: State, first: torch.Tensor) -> tuple[AgentOutput, State]:
        T, B = first.shape
        first = first.bool()
        h, c, f, text, text_mask = state
        candidate_inputs = [self.geometry(obs["candidate_geometry"].float())]
        if self.visual_mode == "features":
            raw = obs["features"] if "features" in obs else self.feature_table[obs["viewpoint"]]
            views = self.visual_encoder(raw.float())  # (T, B, V, H)
            candidate_inputs.insert(0, torch.gather(views, 2, obs["candidate_view"].long().unsqueeze(-1).expand(
                -1, -1, -1, self.hidden_dim)))
            step_views = views.unbind(0)  # per-step slices: one stacked gradient, not a zero tensor per index
        candidates = self.candidate_projection(torch.cat(candidate_inputs, dim=-1))
        candidates = torch.cat([candidates[:, :, :1] + self.stop_embedding, candidates[:, :, 1:]], dim=2)
        if self.visited_embedding is not None:
            candidates = candidates + obs["candidate_visited"].to(candidates.dtype).unsqueeze(-1) * self.visited_embedding
        previous_action = self.geometry(obs["previous_action_geometry"].float())  # (T, B, G)
        if self.odometry is not None:
            previous_action = torch.cat([previous_action, self.odometry(obs["odometry"].float() / ODOMETRY_SCALE)], -1)
        texts, text_masks = instruction_bank(self.instruction_encoder, obs["instruction"], obs["instruction_length"],
                                             first, text, text_mask)

        step_previous_action = previous_action.unbind(0)
        features = []
        for t in range(T):
            keep = (~first[t]).to(h.dtype)[:, None]
            h, c, f = h * keep[:, None], c * keep[:, None], f * keep
            # Input feeding: the previous step's attentional state f queries the panorama and enters the core.
            inputs = [step_previous_action[t], f]
            if self.visual_mode == "features":
                inputs.insert(0, self.view_pooling(f, step_views[t]))
            x, h, c = self.core(torch.cat(inputs, dim=-1), h, c)
            text_context = self.text_attention(x, texts[t], text_masks[t])
            state_inputs = [x, text_context]
            if self.visual_mode == "features":
                state_inputs.append(self.visual_attention(text_context, step_views[t]))
            f = torch.tanh(self.state_projection(self.dropout(torch.cat(state_inputs, dim=-1))))
            features.append(f)
        features = torch.stack(features)  # (T, B, H)
        logits = torch.einsum("tbh,tbkh->tbk", features, candidates) / math.sqrt(self.hidden_dim)
        logits = mask_logits(logits, obs["candidate_mask"].bool())
        values = self.value_head(features).squeeze(-1)
        progress = None if self.progress_head is None else torch.tanh(self.progress_head(features).squeeze(-1))
        return AgentOutput(logits, values, progress), (h, c, f, texts[-1], text_masks[-1])

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:
        check_visual_weights(state_dict, prefix, "visual_encoder.", self.visual_mode)
        super()._load_from_state_dict(state_dict, prefix, *args)
