"""Run folders: the lock (one owner, stale locks taken over), refusal of another run's folder, --overwrite moving
the old run aside, and the removal of temporary files a killed write left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from valan.errors import InputError
from valan.runs import LOCK_NAME, RunFolder, Stopped, stop_on_signals


def test_a_second_claim_fails_at_once_naming_the_owner_and_a_released_folder_is_free(tmp_path):
    with RunFolder(tmp_path / "run") as first:
        record = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"]
        with pytest.raises(InputError, match=rf"in use by another run \(pid {os.getpid()} on host"):
            RunFolder(tmp_path / "run").__enter__()
        assert first.notes == []
    assert not (tmp_path / "run").exists()  # a clean exit removes the lock file, and the folder left empty
    (tmp_path / "run").mkdir()
    with RunFolder(tmp_path / "run"):
        pass


def test_a_lock_held_by_another_process_refuses_and_its_death_frees_the_folder(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from valan.runs import RunFolder
        with RunFolder({str(folder)!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            RunFolder(folder).__enter__()
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, the kernel drops the lock
        holder.wait()
    assert (folder / LOCK_NAME).exists()
    with RunFolder(folder) as claim:
        assert len(claim.notes) == 1 and "stale lock" in claim.notes[0] and f"pid {holder.pid}" in claim.notes[0]


def test_a_folder_holding_a_run_needs_resume_or_overwrite_and_overwrite_moves_it_aside(tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "ckpt-000000005.pt").write_bytes(b"old")
    (folder / "config.yaml").write_text("old: 1\n")
    with pytest.raises(InputError, match="holds another run .*--resume.*--overwrite"):
        RunFolder(folder).__enter__()
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "config.yaml"]  # left as it was
    with RunFolder(folder, resume=True) as claim:
        assert claim.notes == []
    with RunFolder(folder, overwrite=True) as claim:
        (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.previous-")]
        assert claim.notes == [f"moved the previous run to {moved}"]
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]
        assert (moved / "checkpoints" / "ckpt-000000005.pt").read_bytes() == b"old"
    with pytest.raises(InputError, match="exclude each other"):
        RunFolder(folder, resume=True, overwrite=True)


def test_a_kill_during_a_checkpoint_write_leaves_a_temporary_file_that_the_next_claim_removes(tmp_path):
    folder = tmp_path / "run"
    # A run that dies (SIGKILL) halfway through writing its checkpoint (save_checkpoint = atomic_write + torch.save;
    # torch stays out of the subprocess to keep it fast), holding the folder.
    script = textwrap.dedent(f"""
        import os, signal
        from valan.io import atomic_write
        from valan.runs import RunFolder

        with RunFolder({str(folder)!r}):
            with atomic_write({str(folder / "checkpoints" / "ckpt-000000007.pt")!r}, "wb") as f:
                f.write(b"partial")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == -signal.SIGKILL
    (leftover,) = (folder / "checkpoints").glob(".*.tmp")
    assert leftover.name.startswith(".ckpt-000000007.pt.")
    with RunFolder(folder, resume=True) as claim:
        assert not list(folder.rglob("*.tmp"))
        assert any("stale lock" in note for note in claim.notes)
        assert any("removed 1 temporary file" in note for note in claim.notes)


def test_the_first_signal_stops_the_run_and_later_ones_are_ignored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # SIG_IGN in a background job
    with stop_on_signals():
        with pytest.raises(Stopped) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
        assert stopped.value.signum == signal.SIGTERM and str(stopped.value) == "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)  # a second signal while stopping: ignored
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # the previous handlers are back
