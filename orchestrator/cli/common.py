"""What every command module shares: the user-error type and the config arguments."""

from __future__ import annotations

import argparse

EXIT_USAGE = 2


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML run config, e.g. configs/unet_sa/viton_hd.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides: section.key=value (train.lr_d=5e-5)")
