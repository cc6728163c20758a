"""The speaker (Fried et al. 2018, "Speaker-Follower Models for Vision-and-Language Navigation"): path -> instruction.

Encoder: each step ``t`` of a path of ``T`` viewpoints is its geometry ``(5,)`` (the move that arrived there:
sine and cosine of the turn and of the elevation, length in metres; see
:func:`valan.problems.discriminator.pairs.path_geometry`) projected to ``H``, plus, when the speaker uses visual
features, the projected view ``(D,)`` at that step; a bidirectional LSTM (``H // 2`` per direction) reads the steps.
Decoder: an LSTM over word embeddings whose state starts from the mean step encoding, with dot-product attention
over the step encodings at every word (Luong et al. 2015: the output layer reads ``tanh(W [h; context])``). The
vocabulary has no start token, so the first input word is ``<EOS>``.

Shapes: ``features`` ``(B, T, D)``, ``geometry`` ``(B, T, 5)``, ``path_lengths`` ``(B,)`` viewpoints; ``tokens``
``(B, L)`` target ids (``<EOS>`` then ``<PAD>``). Generation never emits ``<PAD>`` or ``<UNK>``, and
at least one word before ``<EOS>``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from valan.agents.base import MASKED_LOGIT
from valan.agents.layers import VisualEncoder, lengths_mask
from valan.envs.r2r.geometry import GEOMETRY_DIM
from valan.text import EOS_ID, PAD_ID, UNK_ID


class Speaker(nn.Module):
    """Attention encoder-decoder from path steps to instruction tokens (see the module docstring)."""

    def __init__(self, vocab_size: int, feature_dim: int, embed_dim: int = 64, hidden_dim: int = 256,
                 dropout: float = 0.0, use_visual: bool = True):
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(f"hidden_dim must be even (two LSTM directions), got {hidden_dim}")
        self.use_visual = use_visual
        self.visual = VisualEncoder(feature_dim, hidden_dim) if use_visual else None
        self.geometry = nn.Linear(GEOMETRY_DIM, hidden_dim)
        self.encoder = nn.LSTM(hidden_dim, hidden_dim // 2, batch_first=True, bidirectional=True)
        self.init_h = nn.Linear(hidden_dim, hidden_dim)
        self.init_c = nn.Linear(hidden_dim, hidden_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.decoder = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.attention_query = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.combine = nn.Linear(2 * hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, vocab_size)
        self.scale = hidden_dim ** -0.5

    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Step encodings ``(B, T, H)``, their mask ``(B, T)`` and the decoder's initial ``(h, c)`` ``(1, B, H)``."""
        steps = self.geometry(batch["geometry"])
        if self.visual is not None:
            steps = steps + self.visual(batch["features"])
        steps = self.dropout(torch.tanh(steps))
        lengths = batch["path_lengths"].clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(steps, lengths.cpu(), batch_first=True, enforce_sorted=False)
        encoded, _ = self.encoder(packed)
        encoded, _ = nn.utils.rnn.pad_packed_sequence(encoded, batch_first=True, total_length=steps.shape[1])
        mask = lengths_mask(lengths, steps.shape[1])
        mean = encoded.sum(1) / lengths[:, None].to(encoded.dtype)
        state = (torch.tanh(self.init_h(mean))[None], torch.tanh(self.init_c(mean))[None])
        return encoded, mask, state

    def _combined(self, hidden: torch.Tensor, encoded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``tanh(W [h; context])`` ``(B, L, H)`` of decoder outputs ``(B, L, H)`` attending over ``encoded``."""
        scores = torch.einsum("blh,bth->blt", self.attention_query(hidden), encoded) * self.scale
        scores = scores.masked_fill(~mask[:, None, :], MASKED_LOGIT)
        context = torch.einsum("blt,bth->blh", torch.softmax(scores, dim=-1), encoded)
        return self.dropout(torch.tanh(self.combine(torch.cat([hidden, context], dim=-1))))

    def forward(self, batch: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the summed negative log-likelihood (nats) of the non-``<PAD>`` tokens of ``tokens``
        given the path and the previous tokens. Word logits are computed at those positions only."""
        encoded, mask, state = self.encode(batch)
        previous = torch.cat([torch.full_like(tokens[:, :1], EOS_ID), tokens[:, :-1]], dim=1)
        hidden, _ = self.decoder(self.dropout(self.embedding(previous)), state)
        valid = tokens != PAD_ID
        logits = self.output(self._combined(hidden, encoded, mask)[valid])
        return F.cross_entropy(logits, tokens[valid], reduction="sum")

    def _step(self, words: torch.Tensor, state: tuple[torch.Tensor, ...], encoded: torch.Tensor,
              mask: torch.Tensor, first: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Log-probabilities ``(B, V)`` of the next word after ``words`` ``(B,)``; ``<PAD>``/``<UNK>`` excluded,
        and ``<EOS>`` too for the ``first`` word (an instruction has at least one word)."""
        hidden, state = self.decoder(self.embedding(words)[:, None], state)
        logits = self.output(self._combined(hidden, encoded, mask))[:, 0]
        excluded = [PAD_ID, UNK_ID, EOS_ID] if first else [PAD_ID, UNK_ID]
        logits[:, excluded] = MASKED_LOGIT
        return F.log_softmax(logits, dim=-1), state

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], max_length: int, sample: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Token ids ``(B, <= max_length)``, greedy (``sample=False``) or sampled from the model's distribution;
        ``<EOS>`` ends an instruction, ``<PAD>`` follows it."""
        encoded, mask, state = self.encode(batch)
        batch_size = encoded.shape[0]
        words = torch.full((batch_size,), EOS_ID, dtype=torch.int64, device=encoded.device)
        done = torch.zeros(batch_size, dtype=torch.bool, device=encoded.device)
        out = []
        for t in range(max_length):
            log_probs, state = self._step(words, state, encoded, mask, first=t == 0)
            if sample:
                words = torch.multinomial(log_probs.exp(), 1, generator=generator)[:, 0]
            else:
                words = log_probs.argmax(-1)
            words = words.masked_fill(done, PAD_ID)
            out.append(words)
            done |= words == EOS_ID
            if done.all():
                break
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def beam_search(self, batch: dict[str, torch.Tensor], max_length: int, beam: int) -> torch.Tensor:
        """The most probable instruction per path under a ``beam``-wide search, ranked by mean log-probability
        per token (``<EOS>`` included); token ids ``(B, <= max_length)`` as :meth:`generate` returns them."""
        encoded, mask, state = self.encode(batch)
        b, k = encoded.shape[0], beam
        encoded, mask = encoded.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        state = tuple(s.repeat_interleave(k, 1) for s in state)
        device = encoded.device
        scores = torch.full((b, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live beam per path at the start
        words = torch.full((b * k,), EOS_ID, dtype=torch.int64, device=device)
        done = torch.zeros(b * k, dtype=torch.bool, device=device)
        lengths = torch.zeros(b * k, device=device)
        history = torch.zeros((b * k, 0), dtype=torch.int64, device=device)
        for t in range(max_length):
            log_probs, state = self._step(words, state, encoded, mask, first=t == 0)
            # A finished beam continues with <PAD> at no cost, so it keeps its score.
            log_probs[done] = float("-inf")
            log_probs[done, PAD_ID] = 0.0
            vocab = log_probs.shape[1]
            total = (scores.reshape(-1, 1) + log_probs).reshape(b, k * vocab)
            scores, index = total.topk(k, dim=1)
            parent = (index // vocab + torch.arange(b, device=device)[:, None] * k).reshape(-1)
            words = (index % vocab).reshape(-1)
            history = torch.cat([history[parent], words[:, None]], dim=1)
            state = tuple(s[:, parent] for s in state)
            lengths = lengths[parent] + (~done[parent]).float()
            done = done[parent] | (words == EOS_ID)
            if done.all():
                break
        best = (scores.reshape(-1) / lengths.clamp(min=1)).reshape(b, k).argmax(1)
        return history[best + torch.arange(b, device=device) * k]
