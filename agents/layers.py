"""Building blocks shared by the valan models (the two followers, the alignment model, the discriminators).

Shape letters: ``T`` time steps of an unroll, ``B`` episodes (or pairs), ``L`` instruction tokens (padded), ``N``
keys or views, ``D`` visual feature size, ``H`` model width. Time-major tensors are ``(T, B, ...)``; recurrent
state is batch-first, ``(B, ...)``. Lengths count tokens. Nothing here carries a physical unit.

- :func:`lengths_mask`: lengths ``(B,)`` -> bool ``(B, size)``, true at positions ``< length``.
- :class:`InstructionEncoder`: word embedding (with dropout) and a bidirectional LSTM, ``H // 2`` per direction:
  token ids ``(B, L)`` and lengths ``(B,)`` -> encodings ``(B, L, H)`` (zeros at padding) and mask ``(B, L)``.
- :func:`instruction_bank`: the encoded instruction in force at every step of an unroll, ``T`` tensors
  ``(B, L, H)`` with their masks ``(B, L)``: instructions are encoded once per episode (where ``first`` is set),
  kept in the recurrent state between unrolls, and reused at the other steps.
- :class:`VisualEncoder`: view features ``(..., D)`` -> ``tanh(W x + b)``, ``(..., H)``.
- :class:`Attention`: scaled dot-product attention of a query ``(B, Q)`` over keys ``(B, N, H)`` (optionally
  masked ``(B, N)``): ``softmax_n((W q) . k_n / sqrt(H))`` weighting the keys, ``(B, H)``.
- :class:`StackedLSTMCell`: one time step of ``layers`` stacked LSTM cells: input ``(B, I)`` and states
  ``h, c`` ``(B, layers, H)`` -> the top layer's output ``(B, H)`` and the new ``h, c``.
- :func:`check_visual_weights`: a follower's checkpoint and model agree on the visual pathway (``agent.visual``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from valan.agents.base import mask_logits
from valan.errors import InputError
from valan.text import EOS_ID, PAD_ID, UNK_ID

_LSTM_TENSORS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def lengths_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size)`` bool, True at positions ``< lengths``."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def drop_words(tokens: torch.Tensor, rate: float) -> torch.Tensor:
    """``tokens`` with each word replaced by ``<UNK>`` with probability ``rate`` (word dropout); ``<PAD>``,
    ``<UNK>`` and ``<EOS>`` stay."""
    dropped = (torch.rand(tokens.shape, device=tokens.device) < rate) & (tokens > EOS_ID)
    return tokens.masked_fill(dropped, UNK_ID)


class InstructionEncoder(nn.Module):
    """Word embedding, dropout and a bidirectional LSTM (in training mode, ``word_dropout`` first replaces words by
    ``<UNK>``: :func:`drop_words`): token ids ``(B, L)`` -> encodings ``(B, L, H)``, mask ``(B, L)``.

    The two directions are separate LSTMs over padded batches; the backward one reads each instruction reversed
    within its own length, so padding never enters a valid position. This computes what a packed bidirectional
    ``nn.LSTM`` computes, but its backward pass on CPU costs several times less. Padding positions encode to
    zeros; a length of 0 counts as 1. A large batch (a learner's unroll starts ~100 episodes) is sorted by length
    and encoded in up to ``MAX_BUCKETS`` buckets, each padded only to its own longest instruction; rows do not
    interact, so the result is the same.

    State dicts of a packed bidirectional ``nn.LSTM`` named ``lstm`` (the discriminator's encoder before it
    shared this class: ``lstm.weight_ih_l0`` and ``lstm.weight_ih_l0_reverse`` ...) load into ``forward_lstm``
    and ``backward_lstm``, so ``valan score``/``filter`` read those checkpoints.
    """

    BUCKET_ROWS = 16  # a batch of n rows is encoded in min(MAX_BUCKETS, n // BUCKET_ROWS) length buckets:
    MAX_BUCKETS = 4  # on 99 R2R instructions (mean 32 tokens, longest 80) forward + backward 58 -> 32 ms on CPU

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, dropout: float = 0.0,
                 word_dropout: float = 0.0):
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(f"hidden_dim must be even (two LSTM directions), got {hidden_dim}")
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        self.word_dropout = word_dropout
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.forward_lstm = nn.LSTM(embed_dim, hidden_dim // 2, batch_first=True)
        self.backward_lstm = nn.LSTM(embed_dim, hidden_dim // 2, batch_first=True)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full_length = tokens.shape[1]
        lengths = lengths.clamp(min=1, max=full_length)
        mask = lengths_mask(lengths, full_length)
        if self.training and self.word_dropout:
            tokens = drop_words(tokens, self.word_dropout)
        buckets = min(self.MAX_BUCKETS, len(lengths) // self.BUCKET_ROWS)
        if buckets < 2 or torch.compiler.is_compiling():  # compiled, buckets add graph breaks (Touchdown 38 -> 34 ms)
            return self._encode(tokens, lengths), mask
        order = torch.argsort(lengths)  # each bucket padded to its own longest (the LSTMs' cost follows that length)
        encoded = torch.cat([self._encode(tokens[rows], lengths[rows]) for rows in order.chunk(buckets)])
        return encoded[torch.argsort(order)], mask

    def _encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encodings ``(B, L, H)`` of ``tokens`` ``(B, L)`` with ``lengths`` in ``1 .. L``, zeros at padding."""
        full_length = tokens.shape[1]
        longest = int(lengths.max())
        valid = lengths_mask(lengths, longest)
        position = torch.arange(longest, device=tokens.device)
        reverse = torch.where(valid, lengths[:, None] - 1 - position, position)  # (B, longest), its own inverse
        embedded = self.dropout(self.embedding(tokens[:, :longest]))
        forward, _ = self.forward_lstm(embedded)
        backward, _ = self.backward_lstm(embedded.gather(1, reverse.unsqueeze(-1).expand_as(embedded)))
        backward = backward.gather(1, reverse.unsqueeze(-1).expand_as(backward))
        encoded = torch.cat([forward, backward], dim=-1) * valid.unsqueeze(-1)
        return F.pad(encoded, (0, 0, 0, full_length - longest))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for name in _LSTM_TENSORS:
            for old, new in ((f"lstm.{name}", f"forward_lstm.{name}"), (f"lstm.{name}_reverse", f"backward_lstm.{name}")):
                if prefix + old in state_dict:
                    state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args)


def instruction_bank(encoder: InstructionEncoder, tokens: torch.Tensor, lengths: torch.Tensor, first: torch.Tensor,
                     text: torch.Tensor, text_mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The instruction in force at each step of an unroll: ``T`` encodings ``(B, L, H)`` and ``T`` masks ``(B, L)``.

    ``tokens`` ``(T, B, L)`` and ``lengths`` ``(T, B)`` are the observed instructions, ``first`` ``(T, B)`` marks
    episode starts, ``text`` ``(B, L, H)`` and ``text_mask`` ``(B, L)`` are the encodings carried in the recurrent
    state from before the unroll. An instruction is encoded once per episode segment: at the steps where an
    episode starts, and at step 0 when gradients are enabled (learning), so the encoder is trained through every
    step; the other steps reuse their segment's encoding, or the carried one before their first start. All starts
    are encoded in one call; steps without a start share the previous step's tensors (no copy, and gradients
    accumulate once per segment rather than once per step).
    """
    starts = first.clone()
    if torch.is_grad_enabled():
        starts[0] = True
    counts = starts.sum(dim=1).tolist()
    if sum(counts):
        # Row-major boolean indexing: the starts of step t are rows sum(counts[:t]) onwards.
        encoded, mask = encoder(tokens[starts], lengths[starts])
        encoded, mask = encoded.to(text.dtype).split(counts), mask.split(counts)
    texts, masks = [], []
    for t, count in enumerate(counts):
        if count:
            text, text_mask = text.index_put((starts[t],), encoded[t]), text_mask.index_put((starts[t],), mask[t])
        texts.append(text)
        masks.append(text_mask)
    return texts, masks


class VisualEncoder(nn.Module):
    """Projects view features ``(..., D)`` to the model size: ``tanh(W x + b)``, ``(..., H)``."""

    def __init__(self, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.projection = nn.Linear(feature_dim, hidden_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.projection(features))


class Attention(nn.Module):
    """Scaled dot-product attention of one query ``(B, Q)`` over keys ``(B, N, H)``; returns ``(B, H)``.

    Keys where ``mask`` ``(B, N)`` is false get weight 0.
    """

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.query = nn.Linear(query_dim, key_dim, bias=False)
        self.scale = 1.0 / math.sqrt(key_dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query(query)
        if torch.compiler.is_compiling():  # inductor fuses the plain formula, and cannot see through the backward below
            return torch.bmm(_attention_weights(q, keys, mask, self.scale).unsqueeze(1), keys).squeeze(1)
        return _AttentionPooling.apply(q, keys, mask, self.scale)


def _attention_weights(q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``softmax_n(scale * q . k_n)`` ``(B, N)`` for queries ``(B, H)`` and keys ``(B, N, H)``; 0 where ``mask`` is
    false."""
    scores = _dot_keys(keys, q) * scale
    if mask is not None:
        scores = mask_logits(scores, mask)
    return torch.softmax(scores, dim=-1)


def _dot_keys(keys: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``k_n . v`` ``(B, N)`` for keys ``(B, N, H)`` and vectors ``v`` ``(B, H)``. As a row vector times the keys
    transposed, not the keys times a column: on CPU the first is 3x faster (84 vs 261 us at B=32, N=80, H=128,
    keys not in cache)."""
    return torch.bmm(v.unsqueeze(1), keys.transpose(1, 2)).squeeze(1)


class _AttentionPooling(torch.autograd.Function):
    """``softmax_n(scale * q . k_n)``-weighted sum of ``keys`` ``(B, N, H)`` for queries ``q`` ``(B, H)``, with a
    hand-written backward.

    Autograd of the two batched matrix-vector products writes the keys' gradient as two ``(B, N, H)`` outer
    products and sums them; here it is one batched product of rank 2, ``[a, ds] @ [d_out; q]``, which halves the
    time of a forward and backward pass on CPU (B=32, N=80, H=128; the followers attend over the instruction at
    every step of an unroll). ``mask`` ``(B, N)`` (optional) gives masked keys weight 0. Under ``torch.compile``
    :class:`Attention` uses autograd instead: inductor fuses that, not a custom backward (Touchdown's compiled
    learner step took 57 ms with this function, 34-37 ms without).
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None, scale: float
                ) -> torch.Tensor:
        weights = _attention_weights(q, keys, mask, scale)
        ctx.save_for_backward(q, keys, weights)
        ctx.scale = scale
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)

    @staticmethod
    def backward(ctx: Any, d_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        q, keys, weights = ctx.saved_tensors
        d_weights = _dot_keys(keys, d_out)
        d_scores = weights * (d_weights - (weights * d_weights).sum(-1, keepdim=True)) * ctx.scale  # softmax'
        d_q = torch.bmm(d_scores.unsqueeze(1), keys).squeeze(1) if ctx.needs_input_grad[0] else None
        d_keys = (torch.bmm(torch.stack([weights, d_scores], dim=-1), torch.stack([d_out, q], dim=1))
                  if ctx.needs_input_grad[1] else None)
        return d_q, d_keys, None, None


class StackedLSTMCell(nn.ModuleList):
    """``layers`` LSTM cells, each feeding the next, advanced one time step.

    ``forward(x (B, I), h (B, layers, H), c (B, layers, H)) -> (top output (B, H), h, c)``. A ``ModuleList`` of
    ``nn.LSTMCell``, so parameters are named ``<layer>.weight_ih`` and so on.
    """

    def __init__(self, input_dim: int, hidden_dim: int, layers: int):
        super().__init__(nn.LSTMCell(input_dim if i == 0 else hidden_dim, hidden_dim) for i in range(layers))

    def forward(self, x: torch.Tensor, h: torch.Tensor,
                c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hs, cs = [], []
        for layer, cell in enumerate(self):
            x, c_layer = cell(x, (h[:, layer], c[:, layer]))
            hs.append(x)
            cs.append(c_layer)
        return x, torch.stack(hs, dim=1), torch.stack(cs, dim=1)


def check_visual_weights(state_dict: dict[str, Any], prefix: str, visual_module: str, visual: str) -> None:
    """``InputError`` unless ``state_dict`` has tensors under ``prefix + visual_module`` exactly when the model
    being loaded has a visual pathway (``visual == "features"``): the weights record which ``agent.visual`` a
    follower was built with."""
    has_visual = any(key.startswith(prefix + visual_module) for key in state_dict)
    if has_visual != (visual == "features"):
        saved = "features" if has_visual else "none"
        raise InputError(f"the checkpoint was trained with agent.visual={saved} but this agent is built with "
                         f"agent.visual={visual} (set agent.visual={saved})")
