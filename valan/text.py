"""Instruction tokenization and vocabularies, shared by R2R, Touchdown and map2seq.

The tokenization is the community R2R one (Anderson et al. 2018, Matterport3DSimulator ``tasks/R2R/utils.py``
behaviour): lowercase, split on runs of non-word characters, keep punctuation as tokens, and break a run of
punctuation into single characters unless it is all full stops (so ``".."`` stays one token).
"""

from __future__ import annotations

import collections
import os
import re
import string
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from valan.errors import InputError
from valan.io import read_text

PAD, UNK, EOS = "<PAD>", "<UNK>", "<EOS>"
SPECIAL_TOKENS = (PAD, UNK, EOS)
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2

_SPLIT = re.compile(r"(\W+)")

MIRROR_WORDS = (("left", "right"), ("leftmost", "rightmost"))
"""Words that trade places when a scene is mirrored left to right (:meth:`Vocabulary.mirror_ids`). "right" as in
"stop right at the door" is swapped too: a few hundred of R2R train's ~10,000 "right"s."""


def tokenize(sentence: str) -> list[str]:
    """Split an instruction into lowercase tokens, punctuation kept as tokens."""
    tokens: list[str] = []
    for word in (s.strip().lower() for s in _SPLIT.split(sentence.strip())):
        if not word:
            continue
        if all(c in string.punctuation for c in word) and not all(c == "." for c in word):
            tokens.extend(c for c in word if not c.isspace())
        else:
            tokens.append(word)
    return tokens


class Vocabulary:
    """Token <-> id map with ``<PAD>=0, <UNK>=1, <EOS>=2`` first."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[:3]) != SPECIAL_TOKENS:
            raise InputError(f"a vocabulary must start with {', '.join(SPECIAL_TOKENS)}; got {list(tokens[:3])}")
        if len(set(tokens)) != len(tokens):
            dup = next(t for t, n in collections.Counter(tokens).items() if n > 1)
            raise InputError(f"duplicate token {dup!r} in vocabulary")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary file: one token per line."""
        if not Path(path).exists():
            raise InputError("vocabulary file not found", source=str(path))
        lines = read_text(path).splitlines()
        try:
            return cls([line for line in lines if line])
        except InputError as e:
            raise InputError(str(e), source=str(path)) from None

    def save(self, path: str | os.PathLike) -> None:
        from valan.io import atomic_write

        with atomic_write(path) as f:
            f.write("\n".join(self.tokens) + "\n")

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 5) -> "Vocabulary":
        """Build from training sentences, keeping tokens seen at least ``min_count`` times.

        Tokens are ordered by decreasing count, ties alphabetically, so the result is deterministic.
        """
        counts = collections.Counter(t for s in sentences for t in tokenize(s))
        kept = sorted((t for t, n in counts.items() if n >= min_count and t not in SPECIAL_TOKENS),
                      key=lambda t: (-counts[t], t))
        return cls(list(SPECIAL_TOKENS) + kept)

    def encode(self, sentence: str, max_length: int) -> tuple[np.ndarray, int]:
        """Token ids of ``sentence`` followed by ``<EOS>``, truncated to ``max_length`` and padded with ``<PAD>``.

        Returns ``(ids, length)`` where ``ids`` has shape ``(max_length,)`` int64 and ``length`` counts the
        non-pad ids (``<EOS>`` included; it is kept even when the sentence is truncated).
        """
        ids = [self.index.get(t, UNK_ID) for t in tokenize(sentence)][: max_length - 1]
        ids.append(EOS_ID)
        out = np.full(max_length, PAD_ID, dtype=np.int64)
        out[: len(ids)] = ids
        return out, len(ids)

    def mirror_ids(self) -> np.ndarray:
        """``(len(self),)`` int64: each token id's mirror image, the other word of its pair in ``MIRROR_WORDS``
        (the id itself for every other token and where the vocabulary lacks the pair's other word). Indexing
        encoded instructions with it gives the instructions of the mirrored scene."""
        ids = np.arange(len(self.tokens), dtype=np.int64)
        for a, b in MIRROR_WORDS:
            if a in self.index and b in self.index:
                ids[self.index[a]], ids[self.index[b]] = self.index[b], self.index[a]
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ``ids`` up to (not including) the first ``<EOS>`` or ``<PAD>``."""
        out = []
        for i in ids:
            if i in (EOS_ID, PAD_ID):
                break
            out.append(self.tokens[int(i)])
        return out
