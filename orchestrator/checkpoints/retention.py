"""Keep ``checkpoint.keep`` true after an interrupted attempt.

Ray Train deletes old checkpoints only among those its controller registered in the run's
``checkpoint_manager_snapshot.json``. A job stopped between a worker's upload and the controller's
registration leaves a checkpoint directory nobody tracks: it is never resumed from and never deleted,
so a run that was killed once keeps ``keep + 1`` checkpoints on object storage forever. After a
successful fit the snapshot is the complete truth, so every ``checkpoint_*`` directory it does not
name is such an orphan.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("vton.checkpoint_retention")

#: Ray Train V2's snapshot file name (ray.train.v2._internal.constants.CHECKPOINT_MANAGER_SNAPSHOT_FILENAME).
SNAPSHOT_FILENAME = "checkpoint_manager_snapshot.json"
CHECKPOINT_PREFIX = "checkpoint_"


def registered_checkpoint_names(snapshot: dict[str, Any]) -> set[str]:
    results = list(snapshot.get("checkpoint_results", [])) + list(snapshot.get("pending_training_results", []))
    if snapshot.get("latest_checkpoint_result"):
        results.append(snapshot["latest_checkpoint_result"])
    return {r["checkpoint_dir_name"] for r in results}


def prune_unregistered_checkpoints(storage_path: str, filesystem: Any, run_name: str) -> list[str]:
    """Delete the run's checkpoint directories that Ray's snapshot does not name; returns their names.

    Does nothing when there is no snapshot (nothing was ever registered, so nothing can be told apart).
    """
    from pyarrow import fs as pafs

    filesystem = filesystem or pafs.LocalFileSystem()
    run_dir = f"{storage_path.rstrip('/')}/{run_name}"
    snapshot_path = f"{run_dir}/{SNAPSHOT_FILENAME}"
    if filesystem.get_file_info(snapshot_path).type != pafs.FileType.File:
        return []
    with filesystem.open_input_stream(snapshot_path) as stream:
        registered = registered_checkpoint_names(json.loads(stream.read().decode("utf-8")))
    entries = filesystem.get_file_info(pafs.FileSelector(run_dir, allow_not_found=True))
    orphans = sorted(e.base_name for e in entries if e.type == pafs.FileType.Directory
                     and e.base_name.startswith(CHECKPOINT_PREFIX) and e.base_name not in registered)
    for name in orphans:
        try:
            filesystem.delete_dir(f"{run_dir}/{name}")
        except FileNotFoundError:
            # Already gone: Ray's own retention emptied it after the listing (an S3 server keeps
            # listing the prefix of an emptied ZeRO checkpoint's nested folders). Pruned either way.
            pass
    if orphans:
        log.warning("removed %d checkpoint(s) of run %s that an interrupted attempt uploaded but Ray never "
                    "registered: %s", len(orphans), run_name, ", ".join(orphans))
    return orphans
