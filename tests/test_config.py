"""Config loading, overrides and validation: every error names the key and what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config, validate_environment

REPO = Path(__file__).resolve().parents[1]
VITON_HD = REPO / "configs" / "unet_sa" / "viton_hd.yaml"


def test_shipped_config_loads_with_overrides():
    cfg = load_config(VITON_HD, ["train.lr_d=5e-5", "strategy.name=deepspeed", "model.variant=full"])
    assert cfg.train.lr_d == pytest.approx(5e-5)  # YAML would read "5e-5" as a string
    assert cfg.strategy.name == "deepspeed"
    assert cfg.model.recipe == "unet_sa" and cfg.model.options["variant"] == "full"
    assert cfg.data.image_size == (256, 192)
    assert cfg.loss.weights["vgg"] == 10.0


def test_to_dict_round_trips_and_flat_keys_are_dotted(tmp_path):
    cfg = load_config(VITON_HD, ["data.image_size=64x48", "loss.weights.vgg=3"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg
    flat = cfg.flat()
    assert flat["train.lr_g"] == 2e-4
    assert flat["loss.weights.vgg"] == 3.0
    assert flat["model.variant"] == "reduced"
    assert flat["data.image_size"] == "[64, 48]"


def test_base_inheritance(tmp_path):
    (tmp_path / "child.yaml").write_text(f"_base_: {VITON_HD}\nname: child\ntrain: {{steps: 7}}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.name == "child" and cfg.train.steps == 7 and cfg.train.lr_g == 2e-4


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("train.lrd=1e-4", ["unknown key 'train.lrd'", "did you mean 'lr_d'", "lr_g"]),
        ("bogus.key=1", ["unknown key 'bogus'", "valid keys in the top level"]),
        ("train.grad_accum=two", ["train.grad_accum", "expected an integer", "'two'"]),
        ("train.grad_accum=0", ["train.grad_accum", ">= 1"]),
        ("train.lr_d=-1e-4", ["train.lr_d", "> 0"]),
        ("train.lr_g=fast", ["train.lr_g", "expected a number"]),
        ("precision.mode=fp8", ["precision.mode", "'fp8'", "fp32, bf16, fp16"]),
        ("strategy.name=horovod", ["strategy.name", "ddp, deepspeed"]),
        ("strategy.zero_stage=3", ["strategy.zero_stage", "0, 1, 2"]),
        ("ray.num_workers=0", ["ray.num_workers", ">= 1"]),
        ("data.image_size=[64]", ["data.image_size", "expected 2 values"]),
        ("data.image_size=60x44", ["data.image_size", "multiples of 8"]),
        ("ray.use_gpu=maybe", ["ray.use_gpu", "true or false"]),
        ("loss.weights.vgg=-1", ["loss.weights.vgg", ">= 0"]),
        ("loss.gan_mode=ralsgan", ["loss.gan_mode", "lsgan, hinge, vanilla, wgan"]),
        ("train", ["must look like section.key=value"]),
    ],
)
def test_bad_values_name_the_key(override, fragments):
    with pytest.raises(ConfigError) as err:
        load_config(VITON_HD, [override])
    for fragment in fragments:
        assert fragment in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(textwrap.dedent("""
        train:
          steps: many
    """))
    with pytest.raises(ConfigError, match="train.steps: expected an integer"):
        load_config(wrong)


def test_use_gpu_without_a_visible_gpu_is_refused():
    cfg = load_config(VITON_HD, ["ray.use_gpu=true"])
    with pytest.raises(ConfigError, match="ray.use_gpu: true but no GPU is visible"):
        validate_environment(cfg, gpus_visible=0)
    with pytest.raises(ConfigError, match="ray.num_workers: 2 GPU workers requested but only 1"):
        validate_environment(cfg, gpus_visible=1)
    validate_environment(cfg, gpus_visible=2)


def test_gpu_kernel_options_default_off_and_benchmark_is_refused_with_deterministic():
    cfg = load_config(VITON_HD, ["train.channels_last=true", "train.cudnn_benchmark=true"])
    assert cfg.train.channels_last and cfg.train.cudnn_benchmark
    assert cfg.flat()["train.channels_last"] is True  # logged to MLflow with every other key
    default = load_config(VITON_HD)
    assert not default.train.channels_last and not default.train.cudnn_benchmark
    with pytest.raises(ConfigError) as err:
        load_config(VITON_HD, ["train.deterministic=true", "train.cudnn_benchmark=true"])
    assert "train.cudnn_benchmark" in str(err.value) and "train.deterministic" in str(err.value)
    load_config(VITON_HD, ["train.deterministic=true", "train.channels_last=true"])  # layout alone is fine
