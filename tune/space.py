"""Search spaces written in YAML, keyed by dotted config keys, checked before any trial starts.

A space file maps a config key to a distribution, exactly the keys `vton train CONFIG key=value`
accepts::

    loss.weights.vgg: loguniform(1, 30)
    train.lr_d: loguniform(1e-5, 1e-3)
    train.d_steps_per_g: choice([1, 2])

Nested mappings are accepted too (``train: {lr_d: loguniform(1e-5, 1e-3)}``). Parsing is strict:
an unknown distribution, malformed arguments, a key the config does not have, or a value the
config (or the recipe) would refuse is a :class:`SpaceError` naming the key, raised on the driver,
because a typo found by the tenth trial costs nine trials. Values reach a trial as the same
``key=value`` overrides the command line takes (:func:`orchestrator.config.override_config`), so a
swept key means what it means everywhere else.

No Ray import at module level: parsing and checking run in `vton tune`'s preflight and in tests.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from orchestrator.config import Config, ConfigError, override_config

#: Distribution name -> what its arguments are; the text users read in the error message.
DISTRIBUTIONS = {
    "uniform": "uniform(low, high): a float in [low, high]",
    "loguniform": "loguniform(low, high): a float, log-uniform in [low, high], 0 < low < high",
    "randint": "randint(low, high): an integer in [low, high) (high excluded, as in Ray Tune)",
    "choice": "choice([a, b, ...]): one of the listed values, sampled",
    "grid": "grid([a, b, ...]): every listed value (multiplies the number of trials)",
}
#: Keys the sweep itself sets for every trial: sweeping them would fight the sweep.
SWEEP_OWNED = {
    "name": "the sweep names every trial's run itself",
    "train.steps": "it is the schedulers' budget (ASHA max_t, the PBT horizon); set it in the config",
    "checkpoint.storage_path": "the sweep keeps all trial checkpoints under one prefix",
}
SWEEP_OWNED_SECTIONS = {
    "tracking": "the sweep owns MLflow runs (one parent, one child per trial)",
    "ray": "trial resources come from `vton tune` options and the base config",
}
#: PBT copies a donor's weights into another trial: only keys that leave the network shapes and
#: the data pipeline unchanged can differ between donor and receiver.
PBT_SECTIONS = ("loss.", "train.")

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.DOTALL)


class SpaceError(ConfigError):
    """A search-space problem; the message names the key (a ConfigError: `vton` prints it as one line)."""


@dataclass(frozen=True)
class Param:
    """One swept key: its distribution and the arguments as written."""

    key: str
    kind: str
    args: tuple[Any, ...]

    @property
    def text(self) -> str:
        """The distribution as written in the space file (MLflow param value, plot label)."""
        if self.kind in ("choice", "grid"):
            return f"{self.kind}({list(self.args[0])!r})"
        return f"{self.kind}({self.args[0]!r}, {self.args[1]!r})"

    @property
    def values(self) -> list[Any]:
        """The listed values of choice/grid (empty for ranges)."""
        return list(self.args[0]) if self.kind in ("choice", "grid") else []

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"

    def probes(self) -> list[Any]:
        """Values checked against the config before the sweep: both ends of a range, every listed value."""
        if self.kind in ("choice", "grid"):
            return self.values
        low, high = self.args
        return [low, high - 1] if self.kind == "randint" else [low, high]

    def to_tune(self) -> Any:
        """The Ray Tune domain (``grid`` becomes ``grid_search``)."""
        from ray import tune

        low_high = self.args
        if self.kind == "uniform":
            return tune.uniform(*low_high)
        if self.kind == "loguniform":
            return tune.loguniform(*low_high)
        if self.kind == "randint":
            return tune.randint(*low_high)
        if self.kind == "choice":
            return tune.choice(self.values)
        return tune.grid_search(self.values)

    def mutation(self) -> Any:
        """What PBT may move this key to: the domain, or the list of grid values."""
        return self.values if self.kind == "grid" else self.to_tune()


@dataclass(frozen=True)
class SearchSpace:
    params: dict[str, Param]
    source: str = "search space"

    # ------------------------------------------------------------------ parsing

    @classmethod
    def from_file(cls, path: str | Path) -> "SearchSpace":
        path = Path(path)
        if not path.is_file():
            raise SpaceError(f"--space {path}: file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpaceError(f"--space {path}: not valid YAML: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, source: str = "search space") -> "SearchSpace":
        if not isinstance(data, Mapping) or not data:
            raise SpaceError(f"{source}: expected a non-empty mapping of config keys to distributions, "
                             f"e.g. 'train.lr_d: loguniform(1e-5, 1e-3)'")
        params: dict[str, Param] = {}
        for key, text in _flatten(data).items():
            if key in params:
                raise SpaceError(f"{source}: '{key}' is given twice")
            params[key] = _parse(key, text, source)
        for key in params:
            _check_not_owned(key, source)
        return cls(params, source)

    # ------------------------------------------------------------------ use

    def tune_space(self) -> dict[str, Any]:
        return {key: p.to_tune() for key, p in self.params.items()}

    def has_grid(self) -> bool:
        return any(p.kind == "grid" for p in self.params.values())

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """A trial's sampled values as command-line overrides (``key=value``) for this space's keys."""
        missing = [k for k in self.params if k not in values]
        if missing:
            raise SpaceError(f"{self.source}: the trial config lacks {missing}")
        return [f"{key}={yaml_scalar(values[key])}" for key in self.params]

    def as_text(self) -> dict[str, str]:
        return {key: p.text for key, p in self.params.items()}

    def validate(self, cfg: Config) -> None:
        """Apply each key's probe values to ``cfg`` through the override machinery and build the
        recipe: an unknown key, a type the field cannot take, a range the config refuses (a negative
        loss weight) or an option/loss term the recipe does not have fails here, naming the key."""
        from orchestrator.recipes import build_recipe_from_config

        for key, param in self.params.items():
            for value in param.probes():
                try:
                    trial_cfg = override_config(cfg, [f"{key}={yaml_scalar(value)}"])
                    build_recipe_from_config(trial_cfg)
                except (ConfigError, ValueError, KeyError) as exc:
                    raise SpaceError(f"{self.source}: '{key}' with value {value!r} ({param.text}): "
                                     f"{str(exc).strip(chr(39) + chr(34))}") from None

    def check_pbt(self) -> None:
        """PBT restores another trial's weights: only loss/optimisation keys may differ."""
        for key in self.params:
            if not key.startswith(PBT_SECTIONS):
                raise SpaceError(
                    f"{self.source}: '{key}' cannot be swept with --scheduler pbt: PBT copies a donor trial's "
                    f"weights and data position into another trial, so only keys under "
                    f"{', '.join(s.rstrip('.') for s in PBT_SECTIONS)} (loss weights, learning rates, D steps) may "
                    f"differ between them; use --scheduler asha for '{key}'")

    def check_optuna(self) -> None:
        for key, param in self.params.items():
            if param.kind == "grid":
                raise SpaceError(f"{self.source}: '{key}': grid(...) cannot be used with --search optuna "
                                 f"(Optuna samples); use choice(...) instead")


# ---------------------------------------------------------------------------------- helpers


def yaml_scalar(value: Any) -> str:
    """``value`` as override text that YAML reads back as the same value (``1e-05`` would be a string
    to YAML 1.1, ``1.0e-05`` is a float)."""
    text = yaml.safe_dump(_plain(value), default_flow_style=True)
    return text.removesuffix("...\n").strip()


def _plain(value: Any) -> Any:
    """numpy scalars (Tune's samples) -> Python values, recursively."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            if not value:
                raise SpaceError(f"search space: '{dotted}' is an empty mapping")
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def _parse(key: str, text: Any, source: str) -> Param:
    where = f"{source}: '{key}'"
    if not isinstance(text, str):
        raise SpaceError(f"{where}: expected a distribution such as loguniform(1, 30) or choice([1, 2]), got "
                         f"{type(text).__name__} {text!r} (a fixed value belongs in the config or an override)")
    match = _CALL.match(text)
    if not match:
        raise SpaceError(f"{where}: cannot read {text!r}; write NAME(ARGS), one of: "
                         f"{'; '.join(DISTRIBUTIONS.values())}")
    kind, raw_args = match.group(1), match.group(2)
    if kind not in DISTRIBUTIONS:
        raise SpaceError(f"{where}: unknown distribution '{kind}'; known: {', '.join(sorted(DISTRIBUTIONS))}")
    try:
        args = ast.literal_eval(f"({raw_args},)") if raw_args.strip() else ()
    except (ValueError, SyntaxError):
        raise SpaceError(f"{where}: arguments of {text!r} are not literals; expected "
                         f"{DISTRIBUTIONS[kind]}") from None
    return Param(key, kind, _check_args(kind, tuple(args), f"{where}: {text!r}"))


def _check_args(kind: str, args: tuple, where: str) -> tuple:
    usage = DISTRIBUTIONS[kind]
    if kind in ("choice", "grid"):
        if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
            raise SpaceError(f"{where}: expected {usage}")
        return (tuple(args[0]),)
    if len(args) != 2 or not all(_is_number(a) for a in args):
        raise SpaceError(f"{where}: expected {usage}")
    low, high = args
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise SpaceError(f"{where}: randint bounds must be integers; expected {usage}")
    if not low < high:
        raise SpaceError(f"{where}: low must be below high; expected {usage}")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"{where}: loguniform needs low > 0; expected {usage}")
    return (low, high)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_not_owned(key: str, source: str) -> None:
    if key in SWEEP_OWNED:
        raise SpaceError(f"{source}: '{key}' cannot be swept: {SWEEP_OWNED[key]}")
    section = key.split(".", 1)[0]
    if section in SWEEP_OWNED_SECTIONS:
        raise SpaceError(f"{source}: '{key}' cannot be swept: {SWEEP_OWNED_SECTIONS[section]}")
