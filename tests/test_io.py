"""valan.io: every way reading or writing a file can fail is one InputError naming the path; a failed write leaves
the old file (and no temporary file or new folder) behind."""

from __future__ import annotations

import errno
import os

import pytest

from valan.errors import InputError
from valan.io import atomic_write, read_json, read_jsonl, read_text, write_json


@pytest.mark.parametrize("content, reason", [
    (None, "file not found"),
    ("directory", "cannot read: is a directory, not a file"),
    (b'["caf\xe9"]', r"not UTF-8 text \(byte 5 is b'\\xe9'\)"),
    (b"[" * 100_000, "nested too deeply to read"),
    (b'[{"a": 1', "malformed JSON"),
])
@pytest.mark.parametrize("reader", [read_json, read_jsonl, read_text])
def test_reading_failures_name_the_file(tmp_path, content, reason, reader):
    path = tmp_path / "input.json"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    if reader is read_text and reason in ("malformed JSON", "nested too deeply to read"):
        assert reader(path) == content.decode()  # plain text: neither is an error
        return
    with pytest.raises(InputError, match=rf"^{path}: {reason}"):
        reader(path)


@pytest.mark.parametrize("reader, where", [(read_json, "at line 1 column 3"), (read_jsonl, "on line 1 column 3")])
def test_a_malformed_json_message_says_where_and_what_without_a_dangling_at(tmp_path, reader, where):
    path = tmp_path / "input.json"
    path.write_text('["\tx"]\n')  # a raw tab inside a string
    with pytest.raises(InputError) as caught:
        reader(path)
    assert str(caught.value) == f"{path}: malformed JSON {where}: Invalid control character"


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    write_json(path, {"old": True})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match=rf"^{path}: cannot write: no space left on the device$"):
        write_json(path, {"new": True})
    assert read_json(path) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_failed_write_removes_the_folders_it_made(tmp_path, monkeypatch):
    path = tmp_path / "made" / "for" / "it.json"
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(InputError, match=rf"^{path}: cannot write: I/O error$"):
        write_json(path, [])
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destinations_name_the_path_at_fault(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(InputError, match=rf"^{a_file}: cannot write: exists and is not a folder$"):
        write_json(a_file / "result.json", [])
    with pytest.raises(InputError, match=rf"^{tmp_path}: cannot write: is a directory, not a file$"):
        write_json(tmp_path, [])
    assert a_file.read_text() == "x"


def test_an_error_inside_the_block_is_not_blamed_on_the_destination(tmp_path):
    path = tmp_path / "result.json"
    with pytest.raises(FileNotFoundError):
        with atomic_write(path):
            (tmp_path / "missing" / "other").read_text()
    assert not path.exists()
