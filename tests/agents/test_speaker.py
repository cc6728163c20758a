"""The speaker learns to describe paths: instructions that name each turn are reproduced (BLEU near 1), and
its three decoders (greedy, sampled, beam) behave as documented."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from valan.agents.speaker import Speaker
from valan.problems.speaker.training import corpus_bleu4
from valan.text import EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, Vocabulary

WORDS = {-90: "turn left", 0: "go straight", 90: "turn right"}  # heading change, degrees clockwise
VOCAB = Vocabulary(list(SPECIAL_TOKENS) + ["turn", "left", "right", "go", "straight", "then", "and", "stop", "."])


def _turn_paths(count: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``count`` four-move paths with distinct turn sequences, and instructions naming their turns in order."""
    combos = list(itertools.product(WORDS, repeat=4))
    chosen = [combos[i] for i in np.random.default_rng(seed).choice(len(combos), count, replace=False)]
    geometry = np.zeros((count, 5, 5), np.float32)
    geometry[:, 0] = [0, 1, 0, 1, 0]
    for n, turns in enumerate(chosen):
        for t, turn in enumerate(turns, 1):
            geometry[n, t] = [math.sin(math.radians(turn)), math.cos(math.radians(turn)), 0.0, 1.0, 2.0]
    texts = [" then ".join(WORDS[t] for t in turns) + " and stop ." for turns in chosen]
    batch = {"features": torch.zeros(count, 5, 4), "geometry": torch.from_numpy(geometry),
             "path_lengths": torch.full((count,), 5)}
    return batch, texts


def _targets(texts: list[str]) -> torch.Tensor:
    return torch.from_numpy(np.stack([VOCAB.encode(t, 24)[0] for t in texts]))


def _text(ids: torch.Tensor) -> list[str]:
    return [" ".join(VOCAB.decode(row.tolist())) for row in ids]


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model on a shared machine (as the one_torch_thread fixture)
    torch.manual_seed(0)
    batch, texts = _turn_paths(12)
    model = Speaker(len(VOCAB), feature_dim=4, embed_dim=16, hidden_dim=32, use_visual=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    targets = _targets(texts)
    for _ in range(120):
        loss = model(batch, targets) / (targets != PAD_ID).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    yield model, batch, texts
    torch.set_num_threads(threads)


def test_speaker_overfits_instructions_that_name_the_turns(trained):
    model, batch, texts = trained
    untrained = Speaker(len(VOCAB), feature_dim=4, embed_dim=16, hidden_dim=32, use_visual=False).eval()
    references = [[t] for t in texts]
    assert corpus_bleu4(_text(untrained.generate(batch, 24)), references) < 0.2
    assert corpus_bleu4(_text(model.generate(batch, 24)), references) > 0.95
    assert corpus_bleu4(_text(model.beam_search(batch, 24, beam=3)), references) > 0.95


def test_decoders_end_at_eos_and_never_emit_pad_or_unk_first(trained):
    model, batch, _ = trained
    for ids in (model.generate(batch, 24), model.generate(batch, 24, sample=True),
                model.beam_search(batch, 24, beam=4)):
        assert ids.shape[0] == 12 and ids.shape[1] <= 24
        assert (ids[:, 0] != EOS_ID).all() and (ids != UNK_ID).all()
        for row in ids.tolist():
            end = row.index(EOS_ID) if EOS_ID in row else len(row)
            assert PAD_ID not in row[:end] and all(t == PAD_ID for t in row[end + 1:])  # only <PAD> after <EOS>


def test_sampling_is_seeded_and_beam_one_is_greedy(trained):
    model, batch, _ = trained
    # a flatter distribution makes samples differ between seeds
    untrained = Speaker(len(VOCAB), feature_dim=4, embed_dim=16, hidden_dim=32, use_visual=False).eval()

    def sample(seed: int) -> torch.Tensor:
        return untrained.generate(batch, 24, sample=True, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(1), sample(1)) and not torch.equal(sample(1), sample(2))
    assert torch.equal(model.beam_search(batch, 24, beam=1), model.generate(batch, 24))


def test_the_visual_pathway_changes_the_output_only_when_built():
    torch.manual_seed(0)
    batch, texts = _turn_paths(3)
    targets = _targets(texts)
    blind = Speaker(len(VOCAB), feature_dim=4, embed_dim=8, hidden_dim=16, use_visual=False)
    seeing = Speaker(len(VOCAB), feature_dim=4, embed_dim=8, hidden_dim=16, use_visual=True)
    other = {**batch, "features": torch.randn(3, 5, 4)}
    assert torch.equal(blind(batch, targets), blind(other, targets))
    assert not torch.equal(seeing(batch, targets), seeing(other, targets))
