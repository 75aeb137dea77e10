"""Typed run configuration: dataclasses, YAML files, dotted overrides, validation before any cluster work.

One config object describes a whole run (data, recipe, losses, optimisation, precision, strategy,
checkpoints, tracking, Ray scaling). It is loaded from YAML (imaginaire-style: a file names its
parts, ``_base_`` inherits another file), patched with dotted overrides from the command line
(``train.lr_d=5e-5 strategy.name=deepspeed``, torchtitan-style), and validated *before* Ray is
touched, so a typo costs a second, not a cluster allocation. The resolved config is what
``vton config show`` prints and what gets logged to MLflow.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

GanMode = Literal["lsgan", "hinge", "vanilla", "wgan"]
PrecisionMode = Literal["fp32", "bf16", "fp16", "auto"]
StrategyName = Literal["ddp", "deepspeed"]
#: Ray placement-group strategies for the worker bundles (ScalingConfig.placement_strategy).
PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class ConfigError(ValueError):
    """A config problem; the message names the dotted key and what would have been accepted."""



#: The largest image side a config may ask for: twice the papers' largest (VITON-HD's 1024x768).
#: Anything above is a typo (a 4096x4096 run starts and then fails on memory, minutes later).
MAX_IMAGE_SIDE = 2048

@dataclass
class DataConfig:
    """Where the shards are and how the loader turns them into batches."""

    manifest: str = ""  # URL of the training manifest.json (s3://... or file://...)
    val_manifest: str = ""  # held-out manifest for in-loop evaluation ("" = none)
    image_size: tuple[int, int] = (256, 192)  # (height, width) the loader resizes to
    batch_size: int = 4  # micro-batch per worker
    loader_workers: int = 1  # DataLoader processes per training worker
    shuffle_buffer: int = 256
    augment: bool = True
    # shards.transforms.AugmentConfig fields over its defaults, e.g. {hflip_p: 0.5, swap_p: 0.5}
    # (swap_p: a two-person sample's source and target exchanged, as multi-pose training does).
    augment_options: dict[str, Any] = field(default_factory=dict)
    representation: str = ""  # loader-side builder; "" = the recipe's own
    # Where the float input tensors are built: "loader" (numpy in the loader workers), "consumer"
    # (workers ship uint8 images + keypoints, the training process expands them on its device),
    # "auto" = consumer on a GPU when the representation has a device-side form, else loader
    # (on CPU the loader workers' spare cores are better spent than the training process's).
    representation_on: Literal["auto", "loader", "consumer"] = "auto"
    pose_sigma: float = 3.0
    max_bad_fraction: float = 0.05  # bad samples tolerated, judged over the run (orchestrator.train.bad_samples)
    check_digests: bool = True  # every member against its build-time sha256 (shards.digests); see bench/p1


@dataclass
class ModelConfig:
    """The recipe (model family + stage); every other key is a recipe option, checked by the recipe.

    ``init``: networks this run starts from a registered stage's weights and keeps training,
    ``{network: "models:/NAME@ALIAS"}`` (the stage's network of the same name) or
    ``"models:/NAME@ALIAS#OTHER"`` (its network OTHER; ``#ema/G`` for G's EMA copy).
    """

    recipe: str = "unet_sa"
    options: dict[str, Any] = field(default_factory=dict)
    init: dict[str, str] = field(default_factory=dict)


@dataclass
class LossConfig:
    gan_mode: GanMode = "lsgan"
    weights: dict[str, float] = field(default_factory=dict)  # overrides of the recipe's defaults


#: Per-network optimizer keys: a value for every network, or ``{network: value, "*": default}``
#: (``train.betas=[0.5,0.999]`` or ``train.betas.D=[0,0.9]``); see ``orchestrator.train.optim``.
PER_NETWORK_KEYS = ("train.optimizer", "train.lr", "train.betas", "train.weight_decay", "train.schedule")


@dataclass
class TrainConfig:
    """Optimisation. Learning rates, betas, weight decay, optimizer type and schedule are per network
    (``train.lr.<network>`` ...); ``lr_g`` / ``lr_d`` set every generator / discriminator at once. A
    key left unset (null) takes what the recipe declares for that network, then the project default
    (Adam, lr 2e-4 for generators and 1e-4 for discriminators, betas (0.5, 0.999), no weight decay,
    ``plateau`` schedule when ``lr_plateau_patience`` > 0, else ``constant``)."""

    steps: int = 1000  # optimizer steps
    lr_g: float | None = None  # every generator's rate (null: the recipe's, else 2e-4)
    lr_d: float | None = None  # every discriminator's rate (null: the recipe's, else 1e-4)
    lr: dict[str, float] = field(default_factory=dict)  # per network, wins over lr_g / lr_d
    betas: Any = None  # [b1, b2] for every network, or {network: [b1, b2], "*": [b1, b2]}
    weight_decay: Any = None  # a number, or per network
    optimizer: Any = None  # adam | adamw, or per network
    schedule: Any = None  # constant | plateau | linear_decay(KEEP, DECAY), or per network
    grad_accum: int = 1  # micro-batches per optimizer step
    d_steps_per_g: int = 1
    # pix2pixHD's order: within a micro-batch the generator phases run first and the discriminator
    # phases judge the fakes they generated (detached) instead of generating them again without a
    # graph: one generator forward less per micro-batch (the whole chain, for a joint stage). Off by
    # default: SPADE/VITON-HD regenerate, and a generator with batch norm, dropout or spectral norm
    # advances its statistics once instead of twice, so results differ from the default order.
    reuse_fakes: bool = False
    grad_clip: float = 0.0  # max grad norm; 0 disables clipping
    ema_decay: float = 0.0  # EMA of G; 0 disables it
    lr_plateau_patience: int = 5  # ReduceLROnPlateau on the validation loss; 0 disables it
    lr_plateau_factor: float = 0.5
    seed: int = 0
    log_every: int = 10
    sample_every: int = 100
    eval_every: int = 100
    eval_batches: int = 4
    deterministic: bool = False
    # GPU kernel choices that change speed, not the model (orchestrator.train.memory_format); off by
    # default. channels_last: every network's weights and the batch's 4-D image tensors in NHWC, the
    # layout tensor-core convolutions read natively (faster on GPU, most of all in bf16/fp16; legal
    # and equal within float rounding on CPU). cudnn_benchmark: cuDNN times its convolution
    # algorithms for the run's fixed shapes on the first steps and keeps the fastest; its choice
    # varies run to run, so it is refused with ``deterministic``. No effect on CPU.
    channels_last: bool = False
    cudnn_benchmark: bool = False


@dataclass
class PrecisionConfig:
    mode: PrecisionMode = "fp32"  # auto: measured on the cluster's workers (orchestrator.train.precision_auto)
    init_scale: float = 65536.0  # fp16 GradScaler initial scale, one scaler per network
    growth_interval: int = 2000
    auto_reason: str = ""  # set when ``auto`` is resolved: why this mode (the measured step times)


@dataclass
class StrategyConfig:
    name: StrategyName = "ddp"
    zero_stage: int = 0  # DeepSpeed ZeRO stage (0, 1 or 2)
    deepspeed_config: str = ""  # optional JSON file merged over the generated DeepSpeed config
    find_unused_parameters: bool = False
    backend: Literal["auto", "gloo", "nccl"] = "auto"


@dataclass
class CheckpointConfig:
    storage_path: str = ""  # s3://bucket/prefix or a local dir; "" = the local stack's bucket
    every_n_steps: int = 100
    keep: int = 3
    #: storage_path is a filesystem every node mounts at the same path (NFS, Lustre): a path is then
    #: allowed on a multi-node cluster (object storage needs no such promise).
    shared_filesystem: bool = False


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = ""  # "" = MLFLOW_TRACKING_URI from the environment / stack env file
    experiment: str = "vton"
    model_name: str = ""  # registered model name; "" = vton-<recipe>
    register_model: bool = True
    system_metrics: bool = True
    #: Log into this existing MLflow run instead of creating or resuming one by run name. A Tune
    #: trial sets it to its child run (under the sweep's parent run), which every PBT generation
    #: of the trial shares even though each generation is a differently named Train run.
    run_id: str = ""


@dataclass
class RayConfig:
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    threads_per_worker: int = 0  # torch intra-op threads per worker; 0 = cpus_per_worker
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    #: Worker-group restarts from the last checkpoint; null: 3 with GPUs (spot nodes are reclaimed;
    #: each restart costs the steps since the last checkpoint), 2 on CPU; 0 turns them off.
    max_failures: int | None = None
    # PACK fills few nodes (fast collectives); SPREAD puts workers on different nodes when it can
    # and still fits them on fewer after a node is lost (with max_failures > 0); STRICT_SPREAD
    # demands one node per worker, so a lost node blocks the retry until a new node joins.
    placement_strategy: PlacementStrategy = "PACK"
    address: str = ""  # "" = RAY_ADDRESS / stack env file / a local in-process Ray

    @property
    def worker_threads(self) -> int:
        """torch's intra-op threads in one worker: ``threads_per_worker``, else its whole CPUs (at least one)."""
        return self.threads_per_worker or max(1, int(self.cpus_per_worker))


@dataclass
class Config:
    name: str = "vton-run"  # run name: checkpoints and resume are keyed by it
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict; model options are written flat under ``model`` as users write them."""
        out = _to_plain(self)
        out["model"] = {"recipe": self.model.recipe, **self.model.options}
        if self.model.init:
            out["model"]["init"] = dict(self.model.init)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, the form logged as MLflow params and swept by Tune."""
        return _flatten(self.to_dict())


# --------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read YAML (with ``_base_`` inheritance), apply dotted overrides, expand ``${VAR}``, validate."""
    raw: dict[str, Any] = _read_yaml_tree(Path(path)) if path else {}
    for item in overrides:
        key, value = _split_override(item)
        _set_dotted(raw, key, value)
    return config_from_dict(expand_env(raw))


def override_config(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """``cfg`` with dotted ``key=value`` overrides applied exactly as on the command line.

    Tune trials and search-space checks use this, so a swept key means what the same override
    typed after ``vton train CONFIG`` means (same parsing, same validation, same error text).
    """
    raw = cfg.to_dict()
    for item in overrides:
        key, value = _split_override(item)
        _set_dotted(raw, key, value)
    return config_from_dict(expand_env(raw))


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    raw = dict(raw)
    model = raw.get("model")
    if model is not None:
        if not isinstance(model, Mapping):
            raise ConfigError(f"model: expected a mapping, got {type(model).__name__}")
        model = dict(model)
        options = dict(model.pop("options", {}) or {})
        recipe = model.pop("recipe", ModelConfig.recipe)
        init = model.pop("init", None) or {}
        raw["model"] = {"recipe": recipe, "options": {**options, **model}, "init": init}
    cfg = _build(Config, raw, "")
    validate_config(cfg)
    return cfg


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(raw: Any, key: str = "") -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in string values, from the environment where the config is
    resolved: a `vton` command on the workstation, the job's entrypoint on the cluster (a RayJob's
    pod environment). So a bucket is named once (``VTON_BUCKET`` in the cluster's env file) and
    configs say ``s3://${VTON_BUCKET}/shards/...``. An unset variable without a default is an error
    naming the key and the variable."""
    if isinstance(raw, Mapping):
        return {k: expand_env(v, _join(key, k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [expand_env(v, f"{key}[{i}]") for i, v in enumerate(raw)]
    if not isinstance(raw, str) or "${" not in raw:
        return raw

    def value(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        hint = (" (your bucket: name it in ~/.vton/cluster.env and pass `--env-file ~/.vton/cluster.env`, "
                "or export it)") if name == "VTON_BUCKET" else ""
        raise ConfigError(f"{key}: {raw!r} names ${{{name}}}, which is not set; set {name} in the "
                          f"environment{hint}")

    expanded = _ENV_REFERENCE.sub(value, raw)
    return type(raw)(expanded) if isinstance(raw, _OverrideText) else expanded


def _read_yaml_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle through {[str(p) for p in seen]}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("_base_", None)
    if base is None:
        return data
    return _deep_merge(_read_yaml_tree(path.parent / base, seen + (path,)), data)


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like section.key=value (e.g. train.lr_d=5e-5)")
    key, value = item.split("=", 1)
    if not key:
        raise ConfigError(f"override '{item}' has no key before '='")
    return key.strip(), value


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None or (not isinstance(child, dict) and ".".join(parts[:depth + 1]) in PER_NETWORK_KEYS):
            # `train.betas.D=...` over a value for every network: that value becomes the default "*".
            child = node[part] = {} if child is None else {"*": child}
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = _OverrideText(value)


class _OverrideText(str):
    """A value typed on the command line: parsed according to the field it lands in."""


# --------------------------------------------------------------------------------------------
# Typed construction


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            where = f"'{prefix}'" if prefix else "the top level"
            hint = difflib.get_close_matches(str(key), names, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(
                f"unknown key '{_join(prefix, key)}'{suggestion}; valid keys in {where}: {', '.join(names)}"
            )
    kwargs = {name: _coerce(hints[name], raw[name], _join(prefix, name)) for name in names if name in raw}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is Any:
        return _plain_value(value)
    if origin is Literal:
        value = str(value)
        if value not in args:
            raise ConfigError(f"{key}: '{value}' is not allowed; allowed values: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, _OverrideText) and value in ("null", "None", "")):
            return None
        return _coerce(inner[0], value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return str(value)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = _parse_text(value)
        if isinstance(value, str) and "x" in value and origin is tuple:  # "64x48" image sizes
            value = value.split("x")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}: {list(value)!r}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return origin(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if isinstance(value, str):
            value = _parse_text(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        vt = args[1] if args else Any
        return {str(k): _coerce(vt, v, _join(key, k)) for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # a bug in this module, not user input


def _plain_value(value: Any) -> Any:
    """A free-form value with every command-line text in it parsed (nested ones included)."""
    if isinstance(value, _OverrideText):
        return _parse_text(str(value))
    if isinstance(value, Mapping):
        return {k: _plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    return value


def _parse_text(value: Any) -> Any:
    return yaml.safe_load(value) if isinstance(value, str) else value


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = _join(prefix, key)
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, dotted))
        elif isinstance(value, (list, tuple)):
            out[dotted] = json.dumps(value)
        else:
            out[dotted] = value
    return out


# --------------------------------------------------------------------------------------------
# Validation


def validate_config(cfg: Config) -> None:
    """Range checks that do not depend on the machine; raises ConfigError naming the key."""
    checks: list[tuple[str, bool, str]] = [
        ("name", bool(cfg.name.strip()) and "/" not in cfg.name, "a non-empty name without '/'"),
        ("train.steps", cfg.train.steps >= 1, ">= 1"),
        ("train.lr_g", cfg.train.lr_g is None or cfg.train.lr_g > 0, "> 0 (or null: the recipe's rate)"),
        ("train.lr_d", cfg.train.lr_d is None or cfg.train.lr_d > 0, "> 0 (or null: the recipe's rate)"),
        ("train.grad_accum", cfg.train.grad_accum >= 1, ">= 1"),
        ("train.d_steps_per_g", cfg.train.d_steps_per_g >= 1, ">= 1"),
        ("train.grad_clip", cfg.train.grad_clip >= 0, ">= 0 (0 disables clipping)"),
        ("train.ema_decay", 0.0 <= cfg.train.ema_decay < 1.0, "in [0, 1) (0 disables EMA)"),
        ("train.lr_plateau_patience", cfg.train.lr_plateau_patience >= 0, ">= 0 (0 disables it)"),
        ("train.lr_plateau_factor", 0.0 < cfg.train.lr_plateau_factor < 1.0, "in (0, 1)"),
        ("train.log_every", cfg.train.log_every >= 1, ">= 1"),
        ("train.sample_every", cfg.train.sample_every >= 0, ">= 0 (0 disables sample grids)"),
        ("train.eval_every", cfg.train.eval_every >= 0, ">= 0 (0 disables in-loop evaluation)"),
        ("train.eval_batches", cfg.train.eval_batches >= 1, ">= 1"),
        ("data.image_size", all(16 <= s <= MAX_IMAGE_SIDE and s % 8 == 0 for s in cfg.data.image_size),
         f"two multiples of 8, each in [16, {MAX_IMAGE_SIDE}] (height, width)"),
        ("data.batch_size", cfg.data.batch_size >= 1, ">= 1"),
        ("data.loader_workers", cfg.data.loader_workers >= 0, ">= 0"),
        ("data.shuffle_buffer", cfg.data.shuffle_buffer >= 1, ">= 1"),
        ("data.pose_sigma", cfg.data.pose_sigma > 0, "> 0"),
        ("data.max_bad_fraction", 0.0 <= cfg.data.max_bad_fraction <= 1.0, "in [0, 1]"),
        ("precision.init_scale", cfg.precision.init_scale > 0, "> 0"),
        ("precision.growth_interval", cfg.precision.growth_interval >= 1, ">= 1"),
        ("strategy.zero_stage", cfg.strategy.zero_stage in (0, 1, 2), "one of 0, 1, 2"),
        ("checkpoint.every_n_steps", cfg.checkpoint.every_n_steps >= 1, ">= 1"),
        ("checkpoint.keep", cfg.checkpoint.keep >= 1, ">= 1"),
        ("ray.num_workers", cfg.ray.num_workers >= 1, ">= 1"),
        ("ray.cpus_per_worker", cfg.ray.cpus_per_worker > 0, "> 0"),
        ("ray.threads_per_worker", cfg.ray.threads_per_worker >= 0, ">= 0 (0 = cpus_per_worker)"),
        ("ray.max_failures", cfg.ray.max_failures is None or cfg.ray.max_failures >= -1,
         ">= -1 (-1 retries forever; null: 3 with GPUs, else 0)"),
    ]
    for key, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"{key}: got {_lookup(cfg, key)!r}; must be {allowed}")
    try:
        from shards.transforms import AugmentConfig

        AugmentConfig.from_options(cfg.data.augment_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.augment_options: {exc}") from None
    for term, weight in cfg.loss.weights.items():
        if weight < 0:
            raise ConfigError(f"loss.weights.{term}: got {weight!r}; must be >= 0")
    for network, lr in cfg.train.lr.items():
        if lr <= 0:
            raise ConfigError(f"train.lr.{network}: got {lr!r}; must be > 0")
    for key, check in _PER_NETWORK_CHECKS.items():
        for network, value in per_network(getattr(cfg.train, key)).items():
            check(value, f"train.{key}" if network == "*" and not isinstance(getattr(cfg.train, key), Mapping)
                  else f"train.{key}.{network}")
    from orchestrator.registry.uris import MODEL_URI_FORMS, is_model_reference

    for network, uri in cfg.model.init.items():
        if not is_model_reference(uri.partition("#")[0]):
            raise ConfigError(f"model.init.{network}: got {uri!r}; expected {MODEL_URI_FORMS}, "
                              "optionally followed by #NETWORK")
    if cfg.train.deterministic and cfg.train.cudnn_benchmark:
        raise ConfigError(
            "train.cudnn_benchmark: true contradicts train.deterministic: true (cuDNN's benchmark picks "
            "convolution algorithms by timing them, so the same run can compute differently); set "
            "train.cudnn_benchmark=false for a reproducible run, or train.deterministic=false for speed"
        )
    if cfg.strategy.deepspeed_config and cfg.strategy.name != "deepspeed":
        raise ConfigError(
            f"strategy.deepspeed_config is set ({cfg.strategy.deepspeed_config!r}) but strategy.name is "
            f"'{cfg.strategy.name}'; set strategy.name=deepspeed or drop the file"
        )


def per_network(value: Any) -> dict[str, Any]:
    """A per-network config value as ``{network or "*": value}`` (``{}`` when unset)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {"*": value}


def parse_schedule(text: Any, key: str = "train.schedule") -> tuple[str, tuple[int, ...]]:
    """``constant`` | ``plateau`` | ``linear_decay(KEEP, DECAY)`` -> (kind, integer arguments)."""
    match = re.fullmatch(r"\s*(constant|plateau)\s*|\s*linear_decay\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*", str(text))
    if not isinstance(text, str) or match is None:
        raise ConfigError(f"{key}: got {text!r}; allowed: constant, plateau, linear_decay(KEEP_STEPS, DECAY_STEPS)")
    if match.group(1):
        return match.group(1), ()
    keep, decay = int(match.group(2)), int(match.group(3))
    if decay < 1:
        raise ConfigError(f"{key}: linear_decay needs DECAY_STEPS >= 1, got {text!r}")
    return "linear_decay", (keep, decay)


def parse_betas(value: Any, key: str = "train.betas") -> tuple[float, float]:
    if isinstance(value, str):
        value = _parse_text(value)
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in value)
    if not ok:
        raise ConfigError(f"{key}: got {value!r}; must be two values in [0, 1)")
    return float(value[0]), float(value[1])


def parse_weight_decay(value: Any, key: str = "train.weight_decay") -> float:
    if isinstance(value, str):
        value = _parse_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{key}: got {value!r}; must be a number >= 0")
    return float(value)


def parse_optimizer(value: Any, key: str = "train.optimizer") -> str:
    if value not in ("adam", "adamw"):
        raise ConfigError(f"{key}: got {value!r}; allowed: adam, adamw")
    return str(value)


_PER_NETWORK_CHECKS = {"betas": parse_betas, "weight_decay": parse_weight_decay, "optimizer": parse_optimizer,
                       "schedule": parse_schedule}


def validate_environment(cfg: Config, gpus_visible: int, gpus_reachable: int | None = None) -> None:
    """Checks that depend on where the run will execute (the driver machine or the cluster).

    ``gpus_reachable``: what an autoscaler can bring up (default: ``gpus_visible``); a run may ask for
    GPUs that are not up yet, as long as the cluster can add them."""
    reachable = gpus_visible if gpus_reachable is None else max(gpus_reachable, gpus_visible)
    if cfg.ray.use_gpu and reachable == 0:
        raise ConfigError(
            "ray.use_gpu: true but no GPU is visible (torch.cuda / the Ray cluster report 0) and no autoscaler "
            "can add one; set ray.use_gpu=false to train on CPU"
        )
    if cfg.ray.use_gpu and cfg.ray.num_workers > reachable:
        more = f" and the autoscaler can bring at most {reachable}" if reachable != gpus_visible else ""
        raise ConfigError(
            f"ray.num_workers: {cfg.ray.num_workers} GPU workers requested but only {gpus_visible} "
            f"GPU(s) are up{more}; lower ray.num_workers (or raise the GPU group's max_workers)"
        )
    if cfg.strategy.backend == "nccl" and not cfg.ray.use_gpu:
        raise ConfigError("strategy.backend: 'nccl' needs GPUs; use 'gloo' or 'auto' with ray.use_gpu=false")


def _lookup(cfg: Config, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node
