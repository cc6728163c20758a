"""Checkpoints: round trip with optimizer state, keep-last pruning, refusal of unsafe and broken files."""

from __future__ import annotations

import os

import pytest
import torch

from valan.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from valan.errors import InputError


def _trained_model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        optimizer.step()
    return model, optimizer


def test_round_trip_restores_model_and_optimizer_state(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 3,
             "config": {"learning": {"lr": 0.01}, "problem": "r2r"}, "problem": "r2r"}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", state)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary file left behind

    loaded = load_checkpoint(path)
    model2 = torch.nn.Linear(3, 2)
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    model2.load_state_dict(loaded["model"])
    optimizer2.load_state_dict(loaded["optimizer"])
    assert loaded["step"] == 3 and loaded["config"] == state["config"] and loaded["problem"] == "r2r"
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    # Adam moments restored: one more identical step gives identical weights.
    x = torch.randn(4, 3)
    for m, opt in ((model, optimizer), (model2, optimizer2)):
        opt.zero_grad()
        m(x).pow(2).sum().backward()
        opt.step()
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    assert optimizer2.state_dict()["state"][0]["step"] == 4


def test_manager_keeps_last_n_and_reports_latest(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpts", keep_last=2)
    assert manager.latest() is None and manager.all() == []
    for step in (5, 10, 100, 20):
        manager.save(step, {"step": step})
    names = [p.name for p in manager.all()]
    assert names == ["ckpt-000000020.pt", "ckpt-000000100.pt"]  # ordered by step, not by write time
    assert load_checkpoint(manager.latest())["step"] == 100
    (tmp_path / "ckpts" / "notes.txt").write_text("x")
    assert len(manager.all()) == 2


def test_manager_rejects_bad_keep_last(tmp_path):
    with pytest.raises(InputError, match="keep_last"):
        CheckpointManager(tmp_path, keep_last=0)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_checkpoint",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Exploit()}, path)
    with pytest.raises(InputError, match="evil.pt.*unsafe"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned_by_checkpoint").exists()


def test_truncated_missing_and_non_checkpoint_files_give_input_errors(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="c.pt"):
        load_checkpoint(path)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(InputError, match="text.pt"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(InputError, match="dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_retention_never_deletes_the_checkpoint_just_written_and_latest_follows_it(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpts", keep_last=2)
    for step in (521, 782, 1042):  # an older run's checkpoints, at higher steps than the next one written
        manager.save(step, {"step": step})
    written = manager.save(11, {"step": 11})
    assert written.is_file()
    assert [p.name for p in manager.all()] == ["ckpt-000000011.pt", "ckpt-000001042.pt"]
    assert load_checkpoint(tmp_path / "ckpts" / "LATEST.pt")["step"] == 11  # the one just written
    manager.save(12, {"step": 12})  # keep_last counts the others: 12 and the newest of the rest
    assert [p.name for p in manager.all()] == ["ckpt-000000012.pt", "ckpt-000001042.pt"]


def test_named_checkpoints_are_copies_where_hard_links_fail_and_survive_retention(tmp_path, monkeypatch):
    from valan import checkpoint

    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(checkpoint.os, "link", no_links)  # e.g. a file system without hard links
    manager = CheckpointManager(tmp_path, keep_last=1)
    manager.save(1, {"step": 1, "w": torch.ones(3)})
    best = manager.save_best({"step": 1, "w": torch.ones(3)}, "val_unseen", "spl", 0.25)
    manager.save(2, {"step": 2})  # deletes ckpt-1: BEST.pt and LATEST.pt are files of their own
    assert [p.name for p in manager.all()] == ["ckpt-000000002.pt"]
    assert load_checkpoint(best)["select"] == {"split": "val_unseen", "metric": "spl", "value": 0.25}
    assert manager.best_value() == 0.25 and load_checkpoint(tmp_path / "LATEST.pt")["step"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_resolve_checkpoint_takes_files_and_run_folders(tmp_path):
    from valan.checkpoint import resolve_checkpoint

    manager = CheckpointManager(tmp_path / "run" / "checkpoints")
    manager.save(3, {"step": 3})
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "LATEST.pt"
    assert resolve_checkpoint(tmp_path / "run" / "checkpoints") == tmp_path / "run" / "checkpoints" / "LATEST.pt"
    assert resolve_checkpoint(manager.path(3)) == manager.path(3)
    with pytest.raises(InputError, match="not found"):
        resolve_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="LATEST.pt"):
        resolve_checkpoint(tmp_path)
