"""What every command module shares: the user-error type and the config arguments."""

from __future__ import annotations

import argparse

from orchestrator.failures import EXIT_USAGE  # noqa: F401 - re-exported: the commands import it from here


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def apply_env_file(env_file: str | None) -> dict[str, str]:
    """``--env-file``: its variables resolve the config here (``${VTON_BUCKET}``) exactly as the job
    will see them there (they are forwarded with it); the file wins over this shell's environment."""
    import os

    if not env_file:
        return {}
    from orchestrator.jobs.submit import read_forwarded

    try:
        values = read_forwarded(env_file)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    os.environ.update(values)
    return values


def add_env_file_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env-file", default=None, metavar="FILE",
                   help="KEY=VALUE lines (e.g. ~/.vton/cluster.env) forwarded to the job and used to resolve the "
                        "config here; nothing else from this shell's environment is forwarded")


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML run config, e.g. configs/unet_sa/viton_hd.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides: section.key=value (train.lr_d=5e-5)")
