"""Telling a sweep stopped by Ctrl-C from one that ended: Tune's graceful shutdown looks like an end.

Imported only once the driver is connected (it imports Ray, whose settings are read at import).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class InterruptWatch(Callback):
    """Tune handles Ctrl-C itself: it stops every trial gracefully and returns their results as if
    the sweep had ended, with the trials it cut short TERMINATED like the ones ASHA stopped. This
    callback notes the interrupt (wrapping the handler Tune installs, after it did) and which
    trials had ended before it, so the summary can tell "stopped" from "interrupted"."""

    def __init__(self) -> None:
        self.interrupted = False
        self._ended_before: set[str] = set()

    def setup(self, **info: Any) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        tune_handler = signal.getsignal(signal.SIGINT)

        def note(signum, frame) -> None:
            self.interrupted = True
            if callable(tune_handler):
                tune_handler(signum, frame)

        signal.signal(signal.SIGINT, note)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        if not self.interrupted:
            self._ended_before.add(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial)

    def ended(self, trial_id: str) -> bool:
        """Whether the trial ended on its own (done, error, or the scheduler's stop)."""
        return not self.interrupted or trial_id in self._ended_before

    def __getstate__(self) -> dict:  # Tune pickles its run config with the experiment state
        return {"interrupted": self.interrupted, "_ended_before": set(self._ended_before)}
