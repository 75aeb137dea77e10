"""A compare-and-set on a registered model's aliases, built from the MLflow registry itself.

MLflow has no conditional write: ``set_registered_model_alias`` and tag writes are blind upserts.
The one atomic primitive the registry offers is ``create_registered_model``: the name is the
primary key of the backend store, so of any number of concurrent creators of one name exactly one
succeeds and every other one gets ``RESOURCE_ALREADY_EXISTS``. This module turns that into the
right to change the aliases of model ``M`` once:

* ``M`` carries a counter tag ``vton.champion_epoch`` (absent = 0), read in the same
  ``get_registered_model`` call as the aliases, so (aliases, epoch) is one consistent snapshot.
* To move the aliases away from the snapshot taken at epoch ``E``, a writer creates the registered
  model ``M.promotion-claim.e<E>.a<k>`` (``k`` = attempt, 0 first). Creating it *is* acquiring
  it. The holder then re-reads ``M``; if the epoch or the aliases differ from its snapshot it
  writes nothing (someone committed first). Otherwise it moves the aliases and, as its last write,
  sets the epoch to ``E + 1``.
* Retiring: after the bump, the holder deletes the claims of older epochs. A late writer that
  re-creates a deleted claim name then sees the bumped epoch in its re-read and stops, because
  the bump happened before the delete.
* Expiry: a holder that dies leaves its claim behind. A claim is dead when it is tagged released
  (its holder gave up without writing) or older than its TTL by the server's creation time; the
  next writer then creates attempt ``k + 1``, again atomically, so at most one writer takes
  over. A holder checks its lease before every write and stops once half the TTL (measured from
  before its create request) has passed, so an old holder and its successor never write at the
  same time as long as clocks agree to within TTL/2 and no single registry call stalls longer
  than that: the usual lease assumptions.

Claims are registered models only because that is where the atomic create lives; they are tagged
``vton.claim.for`` and removed once retired, so they do not accumulate.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

EPOCH_TAG = "vton.champion_epoch"
CLAIM_INFIX = ".promotion-claim."
CLAIM_TTL_S = 120.0
MAX_ATTEMPTS = 32

_TOKEN, _OWNER, _TTL, _FOR, _RELEASED = ("vton.claim.token", "vton.claim.owner", "vton.claim.ttl_s",
                                         "vton.claim.for", "vton.claim.released")


class ClaimConflict(RuntimeError):
    """Another writer holds, or has already used, the right to change this model's aliases."""


def who() -> str:
    """The person or job behind a registry write: ``$VTON_USER`` (CI sets it), else the login name."""
    if os.environ.get("VTON_USER"):
        return os.environ["VTON_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def claim_name(model: str, epoch: int, attempt: int) -> str:
    return f"{model}{CLAIM_INFIX}e{epoch}.a{attempt}"


def read_epoch(registered_model: Any) -> int:
    return int(registered_model.tags.get(EPOCH_TAG, "0"))


def _is_already_exists(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_ALREADY_EXISTS"


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _dead(claim: Any, now_ms: float) -> bool:
    ttl_ms = float(claim.tags.get(_TTL, CLAIM_TTL_S)) * 1000.0
    return claim.tags.get(_RELEASED) == "1" or now_ms > claim.creation_timestamp + ttl_ms


@dataclass
class Claim:
    """The held right to move ``model``'s aliases away from the snapshot taken at ``epoch``."""

    client: Any
    model: str
    epoch: int
    name: str
    token: str
    deadline: float  # time.monotonic() after which this holder must not write

    def assert_live(self) -> None:
        """Called before every write: past the lease another writer may have taken over."""
        if time.monotonic() > self.deadline:
            raise ClaimConflict(f"the promotion claim {self.name} expired before the commit finished; "
                                "nothing more was written, re-run to see the registry's state")

    def bump_epoch(self) -> None:
        """The commit point: after this no other claim of ``epoch`` can write."""
        self.assert_live()
        self.client.set_registered_model_tag(self.model, EPOCH_TAG, str(self.epoch + 1))

    def release(self) -> None:
        """Give up without writing: the next writer may take attempt ``k + 1`` at once."""
        try:
            self.client.set_registered_model_tag(self.name, _RELEASED, "1")
        except Exception:  # noqa: BLE001 - best effort; an unreleased claim still expires
            pass


def acquire(client: Any, model: str, epoch: int, ttl_s: float = CLAIM_TTL_S) -> Claim:
    """Create the first free claim of ``epoch``; ``ClaimConflict`` if a live one exists."""
    token, owner = uuid.uuid4().hex, who()
    start = time.monotonic()
    for attempt in range(MAX_ATTEMPTS):
        name = claim_name(model, epoch, attempt)
        tags = {_TOKEN: token, _OWNER: owner, _TTL: str(ttl_s), _FOR: model}
        try:
            client.create_registered_model(name, tags=tags, description=f"vton promotion claim for {model}")
            return Claim(client, model, epoch, name, token, start + ttl_s / 2)
        except Exception as exc:  # noqa: BLE001 - MlflowException; anything else is re-raised
            if not _is_already_exists(exc):
                raise
        try:
            existing = client.get_registered_model(name)
        except Exception as exc:  # noqa: BLE001
            if _is_missing(exc):  # retired between our create and our read: the epoch has moved on
                raise ClaimConflict(f"the aliases of {model} changed while this promotion ran "
                                    f"(epoch {epoch} is already committed)") from None
            raise
        if existing.tags.get(_TOKEN) == token:  # our own create, answered late (client retry)
            return Claim(client, model, epoch, name, token, start + ttl_s / 2)
        if not _dead(existing, time.time() * 1000.0):
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(existing.creation_timestamp / 1000))
            raise ClaimConflict(f"another promotion of {model} is committing (claim {name} held by "
                                f"{existing.tags.get(_OWNER, '?')} since {since})")
    raise ClaimConflict(f"{MAX_ATTEMPTS} dead promotion claims for epoch {epoch} of {model}; "
                        f"delete the registered models named {model}{CLAIM_INFIX}e{epoch}.*")


def retire_claims(client: Any, model: str, below_epoch: int) -> int:
    """Delete this model's claims of epochs ``< below_epoch`` (safe once the epoch has moved)."""
    pattern = f"{model}{CLAIM_INFIX}".replace("'", "\\'")
    removed = 0
    for rm in client.search_registered_models(filter_string=f"name LIKE '{pattern}%'", max_results=1000):
        if rm.tags.get(_FOR) != model or not rm.name.startswith(f"{model}{CLAIM_INFIX}e"):
            continue
        try:
            epoch = int(rm.name[len(model) + len(CLAIM_INFIX) + 1:].split(".", 1)[0])
        except ValueError:
            continue
        if epoch < below_epoch:
            try:
                client.delete_registered_model(rm.name)
                removed += 1
            except Exception as exc:  # noqa: BLE001 - a concurrent retirer deleted it first
                if not _is_missing(exc):
                    raise
    return removed
