"""Known failures: one line for the user and an exit status per kind, for every command and job.

A script around `vton` (or a pipeline around `ray job submit`) must tell "the data is bad" from
"the S3 server is down" from "the cluster is gone" without parsing text, and a user must see one
line naming the file, sample, key or endpoint, not a 15-line traceback. Every failure kind below
is an error this project raises on purpose with such a message; anything else is a bug and keeps
its traceback.

Types are looked up in the modules already imported (``sys.modules``): an exception can only be
of a type whose module is loaded, and `vton stack status` must not import torch to print an error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

EXIT_FAILED = 1  # a job or check failed for a reason not listed here (its log says why)
EXIT_USAGE = 2  # a bad option, config key or argument
EXIT_REJECTED = 3  # `vton promote`: the gate rejected the candidate
EXIT_DATA = 4  # the dataset or its shards: manifest, sample, member, image, bad-sample limit
EXIT_STORAGE = 5  # object storage: endpoint unreachable, credentials, server errors
EXIT_CLUSTER = 6  # no Ray cluster, the local stack, a node
EXIT_MODEL = 7  # a model, checkpoint or weights file that cannot be used
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141  # the reader of stdout left (128 + SIGPIPE, what a shell reports for `yes | head`)

#: Prefix of the line a job prints for a known failure; `vton submit` reads it back.
FAILURE_PREFIX = "VTON_FAILURE "

#: (exit status, kind, module, type names), most specific first.
KINDS: tuple[tuple[int, str, str, tuple[str, ...]], ...] = (
    (EXIT_USAGE, "config", "orchestrator.config", ("ConfigError",)),
    (EXIT_STORAGE, "storage", "shards.store", ("StoreError",)),
    (EXIT_DATA, "data", "shards.manifest", ("ManifestError",)),
    (EXIT_DATA, "data", "shards.sample", ("MissingModalityError",)),
    (EXIT_DATA, "data", "shards.layouts.common", ("UnsafePathError", "UnreadableImageError")),
    (EXIT_DATA, "data", "shards.layouts.dresscode", ("BadKeypointsError",)),
    (EXIT_DATA, "data", "shards.stream", ("TooManyBadSamplesError",)),
    (EXIT_DATA, "data", "shards.tario", ("CorruptSampleError", "UnsafeMemberError")),
    (EXIT_DATA, "data", "shards.decode", ("BadSampleError",)),
    (EXIT_CLUSTER, "cluster", "orchestrator.jobs.submit", ("NoClusterError",)),
    (EXIT_CLUSTER, "cluster", "cluster.errors", ("StackError",)),
    (EXIT_CLUSTER, "cluster", "cluster.services", ("MissingBinaryError",)),
    (EXIT_CLUSTER, "cluster", "cluster.nodes", ("NodeError",)),
    (EXIT_MODEL, "model", "orchestrator.registry.models", ("ModelError",)),
    (EXIT_MODEL, "model", "orchestrator.checkpoints.loading", ("CheckpointError",)),
    (EXIT_MODEL, "model", "vton_models.weights", ("MissingWeightsError",)),
    (EXIT_MODEL, "model", "vton_models.released", ("CheckpointMismatch",)),
)


@dataclass(frozen=True)
class Failure:
    """A known failure: what the user reads and what the process exits with."""

    exit_code: int
    kind: str
    message: str

    def line(self) -> str:
        return f"error: {self.message}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_log(cls, log_text: str) -> "Failure | None":
        """The failure a job reported (its last ``VTON_FAILURE {json}`` line), if any."""
        for raw in reversed(log_text.splitlines()):
            at = raw.find(FAILURE_PREFIX)
            if at >= 0:
                try:
                    return cls(**json.loads(raw[at + len(FAILURE_PREFIX):]))
                except (ValueError, TypeError):
                    return None
        return None


def _kind_of(exc: BaseException) -> tuple[int, str] | None:
    for code, kind, module_name, names in KINDS:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        types = tuple(t for t in (getattr(module, n, None) for n in names) if isinstance(t, type))
        if types and isinstance(exc, types):
            return code, kind
    return None


def _first_line(exc: BaseException) -> str:
    # A Ray task error's text is the remote traceback; its ``cause`` is the exception raised there.
    exc = getattr(exc, "cause", None) or exc
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _causes(exc: BaseException):
    """``exc``, then what it wraps: Ray Train's per-rank worker failures, ``cause``, __cause__, __context__."""
    seen: set[int] = set()
    todo: list[tuple[str, BaseException]] = [("", exc)]
    while todo:
        where, current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield where, current
        failures = getattr(current, "worker_failures", None)
        if isinstance(failures, dict):
            todo.extend((f"rank {rank}: ", e) for rank, e in sorted(failures.items()))
        controller = getattr(current, "controller_failure", None)
        todo.extend((where, e) for e in (controller, getattr(current, "cause", None),
                                         current.__cause__, current.__context__) if isinstance(e, BaseException))


def classify(exc: BaseException) -> Failure | None:
    """The known failure ``exc`` is (or wraps, e.g. a Ray worker's), else None: a bug, shown in full."""
    for where, current in _causes(exc):
        found = _kind_of(current)
        if found is not None:
            code, kind = found
            return Failure(code, kind, where + _first_line(current))
    return None
