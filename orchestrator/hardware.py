"""What machine this is, in the words results are keyed and reported by.

Why one place: the precision probe caches its choice per CPU model, the reference results keep
digests per CPU model, and every benchmark names the CPU its figures come from; three parsers of
``/proc/cpuinfo`` had started to drift. What a process may use of it (torch's threads) is here too.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask: a container's or taskset's share), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor", "AMD EPYC 9R14 ..."), else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for a block, then the caller's again.

    Why scoped: the count is per process, and an evaluation or a precision probe also runs inside
    longer-lived processes (the promotion gate's driver, a notebook, a test session); setting it for
    good left everything after them on one thread (a test session's in-process training ran at half
    speed on 2 cores after its first in-process ``vton eval``).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(before)
