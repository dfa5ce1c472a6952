"""Output directories: atomic (nothing half-written), hashed in a manifest, tamper-evident on load."""

from __future__ import annotations

import json
import pickle

import pytest

from driftline.offline.errors import OfflineError
from driftline.offline.export import (
    OnlineArtifact,
    atomic_directory,
    sha256_file,
    verify_manifest,
    write_json,
    write_manifest,
)


def test_a_failure_inside_atomic_directory_leaves_nothing_behind(tmp_path) -> None:
    """An error after some files were written: no output directory and no temporary directory remain."""
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as tmp:
        write_json(tmp / "metrics.json", {"half": True})
        raise RuntimeError("training step failed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_refuses_a_non_empty_directory_and_force_replaces_it_only_on_success(tmp_path) -> None:
    """Without force an existing run is kept; with force it survives a failure and is replaced on success."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    with pytest.raises(OfflineError, match="is not empty"), atomic_directory(out):
        pass
    with pytest.raises(RuntimeError), atomic_directory(out, force=True):
        raise RuntimeError("boom")
    assert (out / "old.txt").read_text() == "previous run"
    with atomic_directory(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new run")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_manifest_records_every_file_and_detects_a_changed_one(tmp_path) -> None:
    """Each file's sha256 is in manifest.json; editing a file afterwards fails verification."""
    write_json(tmp_path / "a.json", {"x": 1})
    (tmp_path / "b.bin").write_bytes(b"\x00\x01")
    manifest = write_manifest(tmp_path)
    assert manifest["files"]["b.bin"]["sha256"] == sha256_file(tmp_path / "b.bin")
    verify_manifest(tmp_path)
    (tmp_path / "b.bin").write_bytes(b"\x00\x02")
    with pytest.raises(OfflineError, match="b.bin does not match its sha256"):
        verify_manifest(tmp_path)


def test_online_artifact_refuses_a_river_pickle_swapped_after_training(tmp_path) -> None:
    """A different pickle in place of river_model.pkl is refused before it is unpickled."""
    (tmp_path / "river_model.pkl").write_bytes(pickle.dumps({"model": 1}))
    write_json(
        tmp_path / "online_model.json",
        {"task": "binary", "schema": {"x": "numeric"}, "sha256": sha256_file(tmp_path / "river_model.pkl")},
    )
    write_manifest(tmp_path)
    assert OnlineArtifact.load(tmp_path).model == {"model": 1}
    (tmp_path / "river_model.pkl").write_bytes(pickle.dumps({"model": 2}))
    with pytest.raises(OfflineError, match="river_model.pkl does not match"):
        OnlineArtifact.load(tmp_path)
    assert json.loads((tmp_path / "online_model.json").read_text())["task"] == "binary"
