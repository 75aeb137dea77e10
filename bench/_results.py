"""What every benchmark writes: its JSON under bench/results/ (also printed) and the machine it ran on.

Load averages before and after are part of the result because these machines are shared: a ratio
measured under load says so in its own file.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine_load(load_before: tuple[float, ...], load_after: tuple[float, ...], s3_endpoint: str | None) -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after], "s3_endpoint": s3_endpoint}


def write_json(out: str | Path, payload: dict) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload, indent=1))
    return payload
