"""The shared building blocks: the instruction encoder against a packed BiLSTM, the instruction bank, the core."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from valan.agents.discriminator import StepwiseDiscriminator
from valan.agents.layers import (Attention, InstructionEncoder, StackedLSTMCell, drop_words, instruction_bank,
                                 lengths_mask)
from valan.agents.lingunet import LingUNet
from valan.text import EOS_ID, PAD_ID, UNK_ID


class PackedBiLSTMEncoder(nn.Module):
    """The reference: embedding and a packed bidirectional ``nn.LSTM`` named ``lstm`` (the discriminator's
    encoder's layout before it shared ``InstructionEncoder``)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=tokens.shape[1])[0]


def _tokens(lengths: list[int], size: int, vocab_size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, vocab_size, (len(lengths), size), generator=generator)
    return tokens * lengths_mask(torch.tensor(lengths), size)


def test_the_instruction_encoder_is_a_packed_bidirectional_lstm_and_loads_its_weights():
    torch.manual_seed(0)
    reference, encoder = PackedBiLSTMEncoder(30, 8, 12), InstructionEncoder(30, 8, 12)
    encoder.load_state_dict(reference.state_dict())
    torch.testing.assert_close(encoder.backward_lstm.weight_hh_l0, reference.lstm.weight_hh_l0_reverse, rtol=0, atol=0)
    lengths = torch.tensor([5, 1, 9, 3])
    tokens = _tokens(lengths.tolist(), 9, 30, seed=1)
    encoded, mask = encoder(tokens, lengths)
    torch.testing.assert_close(encoded, reference(tokens, lengths), atol=1e-6, rtol=1e-5)
    assert torch.equal(mask, lengths_mask(lengths, 9))
    assert torch.all(encoded[~mask] == 0)


@pytest.mark.parametrize("make", [lambda: StepwiseDiscriminator(30, 6, embed_dim=8, hidden_dim=12),
                                  lambda: LingUNet(30, 3, embedding_size=8, hidden_size=6)])
def test_checkpoints_with_a_packed_lstm_encoder_still_load(make):
    """Discriminator and LingUNet checkpoints written before their encoders shared ``InstructionEncoder``."""
    torch.manual_seed(0)
    model = make()
    encoder = "instruction_encoder" if hasattr(model, "instruction_encoder") else "text_encoder"
    old = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{encoder}.")}
    old.update({f"{encoder}.{k}": v for k, v in PackedBiLSTMEncoder(30, 8, 12).state_dict().items()})
    model.load_state_dict(old)  # strict: every old name has its place
    assert torch.equal(getattr(model, encoder).forward_lstm.weight_ih_l0, old[f"{encoder}.lstm.weight_ih_l0"])


def test_the_instruction_bank_encodes_once_per_episode_and_reuses_the_carried_encoding():
    torch.manual_seed(0)
    encoder = InstructionEncoder(30, 8, 12)
    T, B, L = 5, 3, 7
    lengths = torch.randint(1, L + 1, (T, B))
    tokens = torch.stack([_tokens(row.tolist(), L, 30, seed=t) for t, row in enumerate(lengths)])
    first = torch.zeros(T, B, dtype=torch.bool)
    first[2, 0] = first[3, 1] = first[3, 2] = True
    carried, carried_mask = torch.randn(B, L, 12), torch.rand(B, L) > 0.5
    with torch.no_grad():
        texts, masks = instruction_bank(encoder, tokens, lengths, first, carried, carried_mask)
        # Expected: the carried encoding until an episode starts, then that start's instruction.
        text, mask = carried.clone(), carried_mask.clone()
        for t in range(T):
            for b in range(B):
                if first[t, b]:
                    text[b], mask[b] = (x[0] for x in encoder(tokens[t, b:b + 1], lengths[t, b:b + 1]))
                torch.testing.assert_close(texts[t][b], text[b], atol=1e-6, rtol=1e-5)
                assert torch.equal(masks[t][b], mask[b])
    # Learning: step 0 is encoded from the observation, not taken from the carried state.
    texts, _ = instruction_bank(encoder, tokens, lengths, first, carried, carried_mask)
    torch.testing.assert_close(texts[1][0], encoder(tokens[0, :1], lengths[0, :1])[0][0], atol=1e-6, rtol=1e-5)


def test_the_stacked_lstm_cell_feeds_each_layer_into_the_next_under_the_old_parameter_names():
    torch.manual_seed(0)
    core = StackedLSTMCell(5, 4, layers=2)
    assert {"0.weight_ih", "1.weight_hh"} <= set(core.state_dict())
    x, h, c = torch.randn(3, 5), torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    top, h_new, c_new = core(x, h, c)
    h0, c0 = core[0](x, (h[:, 0], c[:, 0]))
    h1, c1 = core[1](h0, (h[:, 1], c[:, 1]))
    assert torch.equal(top, h1) and torch.equal(h_new, torch.stack([h0, h1], 1))
    assert torch.equal(c_new, torch.stack([c0, c1], 1))


@pytest.mark.parametrize("compiling", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_softmax_pooling_and_its_gradients_are_exact(masked, compiling, monkeypatch):
    """``Attention``'s hand-written backward (and, as ``torch.compile`` traces it, its autograd path) against
    autograd of the plain formula, and gradcheck in float64."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
    torch.manual_seed(0)
    B, N, H = 3, 5, 4
    attention = Attention(6, H).double()
    query, keys = torch.randn(B, 6, dtype=torch.float64), torch.randn(B, N, H, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool) if masked else None

    def reference(query, keys):
        scores = torch.einsum("bh,bnh->bn", attention.query(query), keys) / math.sqrt(H)
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e9)
        return torch.einsum("bn,bnh->bh", torch.softmax(scores, dim=-1), keys)

    query.requires_grad_(True)
    keys.requires_grad_(True)
    out, expected = attention(query, keys, mask), reference(query, keys)
    torch.testing.assert_close(out, expected)
    if mask is not None:  # a row with one valid key returns that key
        torch.testing.assert_close(out[2], keys[2, 4])
    upstream = torch.randn(B, H, dtype=torch.float64)
    grads = torch.autograd.grad((out * upstream).sum(), (query, keys, attention.query.weight))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), (query, keys, attention.query.weight))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(lambda q, k: attention(q, k, mask), (query, keys))


def test_length_buckets_change_neither_the_encodings_nor_the_gradients(monkeypatch):
    """Batches of many rows are encoded in length buckets (``InstructionEncoder.MAX_BUCKETS``); the result and the
    weights' gradients equal the one-bucket encoding and the packed reference."""
    torch.manual_seed(0)
    reference, encoder = PackedBiLSTMEncoder(30, 8, 12), InstructionEncoder(30, 8, 12)
    encoder.load_state_dict(reference.state_dict())
    lengths = torch.randint(1, 21, (4 * InstructionEncoder.BUCKET_ROWS,))
    lengths[7] = 20
    tokens = _tokens(lengths.tolist(), 20, 30, seed=2)
    upstream = torch.randn(len(lengths), 20, 12)

    def encode_and_grads(max_buckets: int):
        monkeypatch.setattr(InstructionEncoder, "MAX_BUCKETS", max_buckets)
        encoder.zero_grad()
        encoded, mask = encoder(tokens, lengths)
        (encoded * upstream).sum().backward()
        return encoded.detach(), mask, [p.grad.clone() for p in encoder.parameters()]

    bucketed, mask, bucketed_grads = encode_and_grads(4)
    whole, whole_mask, whole_grads = encode_and_grads(1)
    torch.testing.assert_close(bucketed, whole, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(bucketed, reference(tokens, lengths).detach(), atol=1e-6, rtol=1e-5)
    assert torch.equal(mask, whole_mask) and torch.all(bucketed[~mask] == 0)
    for got, want in zip(bucketed_grads, whole_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_word_dropout_replaces_words_only_and_only_in_training():
    torch.manual_seed(0)
    tokens = torch.randint(3, 50, (64, 40))
    tokens[:, 30] = EOS_ID
    tokens[:, 31:] = PAD_ID
    dropped = drop_words(tokens, 0.25)
    changed = dropped != tokens
    assert (dropped[changed] == UNK_ID).all()
    assert not changed[:, 30:].any()  # <EOS> and padding stay
    assert 0.2 < changed[:, :30].float().mean() < 0.3
    encoder = InstructionEncoder(50, 8, 16, word_dropout=0.25)
    lengths = torch.full((64,), 31)
    encoder.eval()
    a, _ = encoder(tokens, lengths)
    b, _ = encoder(tokens, lengths)
    assert torch.equal(a, b)  # evaluation reads every word
    encoder.train()
    assert not torch.allclose(encoder(tokens, lengths)[0], a)
