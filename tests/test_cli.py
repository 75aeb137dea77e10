"""The `vton` entry point: config printing, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

VTON = str(Path(sys.executable).parent / "vton")
REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([VTON, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_config_show_prints_the_resolved_config():
    out = run("config", "show", "configs/unet_sa/viton_hd.yaml", "train.lr_d=5e-5", "strategy.name=deepspeed")
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)
    assert shown["train"]["lr_d"] == 5e-5
    assert shown["strategy"]["name"] == "deepspeed"
    assert shown["model"] == {"recipe": "unet_sa", "variant": "reduced", "garment_input": "cloth_and_mask"}


def test_config_errors_are_one_line_without_traceback():
    out = run("config", "show", "configs/unet_sa/viton_hd.yaml", "train.grad_accum=0")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: train.grad_accum: got 0; must be >= 1"


def test_tune_refuses_a_bad_space_in_one_line_before_touching_ray(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("train.lr_dd: loguniform(1e-5, 1e-3)\n")
    out = run("tune", "configs/unet_sa/demo.yaml", "--space", str(space))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: {space}: 'train.lr_dd'") and "did you mean 'lr_d'" in out.stderr
    assert "Traceback" not in out.stderr and "ray" not in out.stdout.lower()


def test_help_lists_every_subcommand():
    out = run("--help")
    for command in ("stack", "shard", "train", "eval", "tune", "promote", "tryon", "submit", "demo", "config"):
        assert command in out.stdout
    assert "list" in run("models", "--help").stdout


def test_every_option_has_help_and_the_version_names_the_commit():
    import argparse

    from orchestrator.cli import build_parser

    def silent(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from silent(child, [*path, name])
            elif not action.help and not isinstance(action, argparse._HelpAction):
                yield " ".join([*path, *(action.option_strings or [action.dest])])

    assert list(silent(build_parser(), ["vton"])) == []
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("vton 0.1.0 (commit ") and len(out.stdout.split()[-1]) == 13


def test_shard_size_needs_a_unit(tmp_path):
    """`--shard-size 4` meant 4 bytes: a shard per sample, silently."""
    out = run("shard", "build", "--layout", "viton_hd", "--src", str(tmp_path), "--split", "train",
              "--dest", str(tmp_path / "out"), "--shard-size", "4")
    assert out.returncode == 2 and "'4' has no unit: write e.g. 256MB, 64MiB or 4B for bytes" in out.stderr
    assert "256MB (default)" in run("shard", "build", "--help").stdout


def test_submit_checks_everything_it_can_here_before_any_cluster_work(tmp_path, monkeypatch, capsys):
    """An unknown recipe, a bad model option, an absurd image size or a missing manifest used to
    become a cluster job that failed seconds later (`--no-wait` exited 0). Now each is one line
    naming the key, exit 2 (a missing manifest: 4, bad data), before a cluster is even looked for."""
    from orchestrator.cli import main
    from orchestrator.failures import EXIT_DATA, EXIT_USAGE
    from plugins.data import local_shards

    for key in ("RAY_ADDRESS", "VTON_RAY_JOB_ADDRESS", "VTON_RAY_GCS_ADDRESS"):  # a session stack may be up
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VTON_STACK_DIR", str(tmp_path / "no-stack"))
    root = local_shards(tmp_path / "data", 6, (64, 48), 3)
    data = [f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=",
            "data.image_size=64x48", "model.ngf=8", "model.ndf=8"]
    for overrides, named, status in (
            (["model.recipe=unet_sb"], "model.recipe", EXIT_USAGE),
            (["model.ngf=-3"], "model.ngf", EXIT_USAGE),
            (["model.input_nc=5"], "input_nc", EXIT_USAGE),
            (["data.image_size=4096x4096"], "data.image_size", EXIT_USAGE),
            ([f"data.manifest=file://{tmp_path}/nowhere/manifest.json"], "data.manifest", EXIT_DATA)):
        capsys.readouterr()
        assert main(["submit", "configs/unet_sa/demo.yaml", *data, *overrides, "--no-wait"]) == status, overrides
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err and "no Ray cluster" not in err, (overrides, err)
    # All good locally: only now is the cluster looked for.
    capsys.readouterr()
    assert main(["submit", "configs/unet_sa/demo.yaml", *data, "--no-wait"]) != 0
    assert "no Ray cluster to submit to" in capsys.readouterr().err


def test_long_steps_show_progress_as_lines_in_a_log(tmp_path):
    """`shard verify` printed nothing until it ended and `shard build` showed a bar only on a
    terminal: in a log each now prints a line per 10% of the work."""
    from shards.synthetic import synthesize_layout

    synthesize_layout("viton_hd", tmp_path / "data", n=24, size=(64, 48), seed=0)
    dest = f"file://{tmp_path}/shards"
    build = run("shard", "build", "--layout", "viton_hd", "--src", str(tmp_path / "data"), "--split", "train",
                "--dest", dest, "--shard-size", "20KB", "--workers", "1")
    assert build.returncode == 0, build.stderr
    lines = [line for line in build.stderr.splitlines() if line.startswith("build: ")]
    assert len(lines) >= 2 and lines[-1].startswith("build: 100% 18/18 shards"), build.stderr
    verify = run("shard", "verify", f"{dest}/manifest.json")
    assert verify.returncode == 0, verify.stderr
    lines = [line for line in verify.stderr.splitlines() if line.startswith("verify: ")]
    assert len(lines) >= 10 and lines[-1].startswith("verify: 100% 18/18 shards") and "\r" not in verify.stderr, lines


def test_a_closed_output_pipe_ends_quietly():
    """`vton stack status | head -1`: the reader leaves before the output is written; no traceback."""
    program = ("import os, sys\n"
               "read_end, write_end = os.pipe()\n"
               "os.close(read_end)\n"
               "os.dup2(write_end, 1)\n"
               "from orchestrator.cli import main\n"
               "sys.exit(main(['stack', 'status']))\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 141, out.stderr
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr
