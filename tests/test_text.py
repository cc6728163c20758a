"""Tokenization (community R2R rules) and vocabularies: encode, truncate, build, load."""

from __future__ import annotations

import numpy as np
import pytest

from valan.errors import InputError
from valan.text import EOS_ID, PAD_ID, UNK_ID, Vocabulary, tokenize


@pytest.mark.parametrize("sentence, tokens", [
    ("Go left, then..stop!", ["go", "left", ",", "then", "..", "stop", "!"]),
    ("Walk past the chair's legs.", ["walk", "past", "the", "chair", "'", "s", "legs", "."]),
    ("  Turn RIGHT!? Wait...  ", ["turn", "right", "!", "?", "wait", "..."]),
    ("stairs(2nd floor)", ["stairs", "(", "2nd", "floor", ")"]),
    ("", []),
])
def test_tokenize_keeps_punctuation_as_tokens(sentence, tokens):
    assert tokenize(sentence) == tokens


def _vocab() -> Vocabulary:
    return Vocabulary(["<PAD>", "<UNK>", "<EOS>", "go", "left", ",", "stop", "!"])


def test_encode_appends_eos_pads_and_maps_unknown_words():
    ids, length = _vocab().encode("Go left, then stop!", 10)
    assert ids.dtype == np.int64 and ids.shape == (10,)
    assert ids.tolist() == [3, 4, 5, UNK_ID, 6, 7, EOS_ID, PAD_ID, PAD_ID, PAD_ID]
    assert length == 7
    assert _vocab().decode(ids) == ["go", "left", ",", "<UNK>", "stop", "!"]


def test_encode_truncates_but_keeps_eos():
    ids, length = _vocab().encode("go left go left go left", 4)
    assert ids.tolist() == [3, 4, 3, EOS_ID] and length == 4
    ids, length = _vocab().encode("", 3)
    assert ids.tolist() == [EOS_ID, PAD_ID, PAD_ID] and length == 1


def test_build_is_deterministic_and_filters_rare_tokens():
    sentences = ["walk left", "walk right", "walk left then stop", "stop", "left"]
    a = Vocabulary.build(sentences, min_count=2)
    b = Vocabulary.build(list(reversed(sentences)), min_count=2)
    assert a.tokens == b.tokens
    # counts: walk 3, left 3, stop 2 -> by count, then alphabetically
    assert a.tokens == ["<PAD>", "<UNK>", "<EOS>", "left", "walk", "stop"]


def test_vocabulary_rejects_bad_files(tmp_path):
    missing_specials = tmp_path / "v1.txt"
    missing_specials.write_text("go\nleft\n")
    with pytest.raises(InputError, match="v1.txt"):
        Vocabulary.load(missing_specials)
    duplicate = tmp_path / "v2.txt"
    duplicate.write_text("<PAD>\n<UNK>\n<EOS>\ngo\ngo\n")
    with pytest.raises(InputError, match="duplicate token 'go'"):
        Vocabulary.load(duplicate)
    with pytest.raises(InputError, match="not found"):
        Vocabulary.load(tmp_path / "absent.txt")


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "vocab.txt"
    _vocab().save(path)
    assert Vocabulary.load(path).tokens == _vocab().tokens


def test_load_community_train_vocabulary(shared_r2r):
    vocab = Vocabulary.load(shared_r2r / "train_vocab.txt")
    assert len(vocab) == 991
    assert vocab.tokens[:3] == ["<PAD>", "<UNK>", "<EOS>"]
    ids, length = vocab.encode("Walk past the dining table and stop at the stairs.", 80)
    assert UNK_ID not in ids[:length].tolist()
    assert vocab.decode(ids) == tokenize("Walk past the dining table and stop at the stairs.")


def test_mirror_ids_swap_left_and_right_and_nothing_else():
    vocab = Vocabulary(["<PAD>", "<UNK>", "<EOS>", "turn", "left", "right", "leftmost", "stop"])
    ids, _ = vocab.encode("Turn left, then right; the leftmost stop", 12)
    mirrored = vocab.mirror_ids()[ids]
    assert vocab.decode(mirrored) == ["turn", "right", "<UNK>", "<UNK>", "left", "<UNK>", "<UNK>", "leftmost",
                                      "stop"]  # "rightmost" is not in this vocabulary, so "leftmost" stays
    np.testing.assert_array_equal(vocab.mirror_ids()[vocab.mirror_ids()], np.arange(len(vocab)))
