"""What machine this is, in the words results are keyed and reported by.

Why one place: the precision probe caches its choice per CPU model, the reference results keep
digests per CPU model, and every benchmark names the CPU its figures come from; three parsers of
``/proc/cpuinfo`` had started to drift.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor", "AMD EPYC 9R14 ..."), else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
