"""Progress of long steps (shard build and verify, evaluation) on stderr, readable in a log too.

On a terminal: tqdm's bar. Elsewhere (a Ray job log, CI, `| tee`), a bar rewritten with '\\r' becomes
one endless line, and no bar at all left `vton eval` silent for 46 s: so every tenth of the work
(and the end) is one plain line, "verify: 40% 4/10 shards [00:03<00:04]".
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

_PLAIN_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]"


class _Lines:
    """A file for tqdm that turns each redraw into one line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int, desc: str, unit: str = "it", stream: TextIO | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on a terminal, else a line per 10% of ``total``; use as ``bar.update(n)`` / ``bar.close()``."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(total=total, desc=desc, unit=unit, file=stream, **kwargs)
    return tqdm(total=total, desc=desc, unit=unit, file=_Lines(stream), miniters=max(1, total // 10),
                mininterval=0, maxinterval=float("inf"), bar_format=_PLAIN_FORMAT, **kwargs)
