"""Orphaned checkpoints (uploaded, never registered by Ray's controller) are removed after a fit."""

from __future__ import annotations

import json

from orchestrator.checkpoints.retention import SNAPSHOT_FILENAME, prune_unregistered_checkpoints


def _checkpoint(run_dir, name):
    (run_dir / name).mkdir(parents=True)
    (run_dir / name / "state.pt").write_bytes(b"x")


def test_only_checkpoints_missing_from_rays_snapshot_are_removed(tmp_path):
    run_dir = tmp_path / "run-a"
    for name in ("checkpoint_1", "checkpoint_2", "checkpoint_3", "checkpoint_orphan"):
        _checkpoint(run_dir, name)
    (run_dir / "other_dir").mkdir()
    snapshot = {"checkpoint_results": [{"checkpoint_dir_name": "checkpoint_1", "metrics": {}},
                                       {"checkpoint_dir_name": "checkpoint_2", "metrics": {}}],
                "latest_checkpoint_result": {"checkpoint_dir_name": "checkpoint_2", "metrics": {}},
                "pending_training_results": [{"checkpoint_dir_name": "checkpoint_3", "metrics": {}}]}
    (run_dir / SNAPSHOT_FILENAME).write_text(json.dumps(snapshot))

    assert prune_unregistered_checkpoints(str(tmp_path), None, "run-a") == ["checkpoint_orphan"]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint_1", "checkpoint_2", "checkpoint_3", SNAPSHOT_FILENAME, "other_dir"]


def test_without_a_snapshot_nothing_is_touched(tmp_path):
    _checkpoint(tmp_path / "run-b", "checkpoint_1")
    assert prune_unregistered_checkpoints(str(tmp_path), None, "run-b") == []
    assert (tmp_path / "run-b" / "checkpoint_1" / "state.pt").exists()
    assert prune_unregistered_checkpoints(str(tmp_path), None, "never-ran") == []


def test_a_checkpoint_emptied_meanwhile_counts_as_pruned(tmp_path):
    """Ray's retention may empty a checkpoint between the listing and the deletion (DeepSpeed's nested
    ZeRO folders on S3): the job must not fail after training for it."""
    import shutil

    from pyarrow import fs as pafs

    class RetentionRace:
        """The local filesystem, where Ray deletes each directory just before we do."""

        def __init__(self) -> None:
            self.local = pafs.LocalFileSystem()

        def __getattr__(self, name):
            return getattr(self.local, name)

        def delete_dir(self, path: str) -> None:
            shutil.rmtree(path)
            self.local.delete_dir(path)  # raises FileNotFoundError, as pyarrow does for a vanished folder

    run_dir = tmp_path / "run-c"
    for name in ("checkpoint_1", "checkpoint_2"):
        _checkpoint(run_dir, name)
    (run_dir / SNAPSHOT_FILENAME).write_text(json.dumps(
        {"checkpoint_results": [{"checkpoint_dir_name": "checkpoint_2", "metrics": {}}]}))
    assert prune_unregistered_checkpoints(str(tmp_path), RetentionRace(), "run-c") == ["checkpoint_1"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_2", SNAPSHOT_FILENAME]
