"""The sweep at a glance: the metric against each swept key, one panel per key, one dot per trial.

A scatter row rather than parallel coordinates: with a handful of trials and a few keys it reads
at once which direction helps, and log-uniform keys get a log axis. Trials that trained to the
end are filled, scheduler-stopped ones hollow, the best one a star.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tune.results import SweepSummary
    from tune.space import SearchSpace


def trials_scatter_png(summary: "SweepSummary", space: "SearchSpace") -> bytes | None:
    """PNG bytes, or None when no trial reported the metric (nothing to draw)."""
    scored = [t for t in summary.trials if t.metric is not None and math.isfinite(t.metric)]
    if not scored:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    keys = list(space.params)
    best = summary.best_trial()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        param = space.params[key]
        categories = [repr(v) for v in param.values] if param.values else []
        for t in scored:
            value = t.config.get(key)
            x = categories.index(repr(value)) if categories and repr(value) in categories else value
            if not isinstance(x, (int, float)):
                continue
            is_best = best is not None and t.trial_id == best.trial_id
            ax.scatter([x], [t.metric], s=140 if is_best else 40, marker="*" if is_best else "o",
                       facecolors="C3" if is_best else ("C0" if t.status == "completed" else "none"),
                       edgecolors="C3" if is_best else "C0")
        if param.log_scale:
            ax.set_xscale("log")
        if categories:
            ax.set_xticks(range(len(categories)), categories)
        ax.set_xlabel(key)
        ax.set_ylabel(summary.metric)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{summary.name}: {len(summary.trials)} trials ({summary.scheduler}); "
                 f"filled = trained to the end, star = best", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
