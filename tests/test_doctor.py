"""`vton doctor` on the local multi-node stack, and the deploy checks a first GPU-cluster run relies on.

The stack's Ray nodes start with its endpoints in their environment, as a real cluster's nodes start
with its env file, and jobs see the nodes' environment (nothing of the submitting shell's). A node
started with a broken S3 endpoint and an empty weight cache is what a badly provisioned cluster node
looks like; the doctor must name that node and those checks, and pass the healthy ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cluster import nodes
from orchestrator.jobs.doctor import DoctorReport
from plugins.weights import torch_home  # noqa: F401  - session fixture

REPO = Path(__file__).resolve().parents[1]
VTON = str(Path(sys.executable).parent / "vton")
CONFIG = [str(REPO / "configs" / "unet_sa" / "demo.yaml"), "data.manifest=", "data.val_manifest=",
          "ray.num_workers=2", "ray.cpus_per_worker=1", "ray.placement_strategy=SPREAD"]

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _vton(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([VTON, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env or dict(os.environ))


def _rows(report: dict, node_label: str) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"] if c["node"].startswith(node_label + "/")}


@pytest.fixture(scope="module")
def healthy_node(stack, torch_home):  # noqa: F811
    handle = nodes.add_node(stack.settings, num_cpus=2, log=lambda _m: None, env={"TORCH_HOME": str(torch_home)})
    try:
        yield handle
    finally:
        nodes.stop_node(stack.settings, handle.index, log=lambda _m: None)


def test_doctor_names_the_node_and_check_a_misprovisioned_node_fails(stack, healthy_node, tmp_path):
    broken = nodes.add_node(stack.settings, num_cpus=1, log=lambda _m: None, env={
        "VTON_S3_ENDPOINT": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "TORCH_HOME": str(tmp_path / "empty-torch-home")})
    try:
        out = _vton("doctor", *CONFIG, "loss.weights.vgg=10", "--json")  # this run needs VGG19
    finally:
        nodes.stop_node(stack.settings, broken.index, log=lambda _m: None)
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads(out.stdout)
    bad = _rows(report, f"vton_node_{broken.index}")
    assert bad["storage"]["status"] == "fail" and "127.0.0.1:9" not in bad["storage"]["fix"]
    assert "VTON_BUCKET" in bad["storage"]["fix"]
    assert bad["weights"]["status"] == "fail" and "vgg19" in bad["weights"]["detail"]
    assert "vton weights prepare" in bad["weights"]["fix"]
    good = _rows(report, f"vton_node_{healthy_node.index}")
    assert good["storage"]["status"] == "ok" and good["weights"]["status"] in ("ok", "warn")


def test_doctor_passes_a_healthy_two_node_stack(stack, healthy_node):
    """After the test above, whose node Ray still lists as dead: the doctor checks live nodes only."""
    out = _vton("doctor", *CONFIG, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"]
    assert {c["node"].split("/")[0] for c in report["checks"]} == {"head", f"vton_node_{healthy_node.index}"}
    node = _rows(report, f"vton_node_{healthy_node.index}")
    head = _rows(report, "head")
    for rows in (node, head):
        assert {"gpu", "storage", "mlflow", "weights", "disk", "shm"} <= set(rows)
        assert rows["storage"]["status"] == "ok" and f"s3://{stack.bucket}/checkpoints" in rows["storage"]["detail"]
        assert rows["mlflow"]["status"] == "ok" and rows["gpu"]["detail"].startswith("CPU node")
    allreduce = [c for c in report["checks"] if c["check"] == "allreduce"]
    assert allreduce and allreduce[0]["status"] == "ok" and "2 worker(s), gloo" in allreduce[0]["detail"]
    table = DoctorReport.from_json(out.stdout).table()  # what `vton doctor` without --json prints of it
    assert "cluster OK" in table and f"vton_node_{healthy_node.index}/" in table


def test_a_node_local_checkpoint_path_is_refused_on_a_multi_node_cluster(stack, healthy_node, tmp_path):
    """Ray Train refuses a worker's upload to a path on another node at the first checkpoint; the
    job's preflight refuses it before any worker starts, and `vton submit` exits 2 (config) with it."""
    from plugins.data import s3_shards

    shards = s3_shards(tmp_path / "data", stack.bucket, "doctor", n=6, seed=1)  # `vton submit` reads one sample
    out = _vton("submit", *CONFIG[:1], f"name=local-ckpt-{uuid.uuid4().hex[:6]}", "data.val_manifest=",
                f"data.manifest={shards}/train/manifest.json", f"checkpoint.storage_path={tmp_path}/ckpt",
                "tracking.enabled=false", "data.image_size=64x48", timeout=240)
    assert out.returncode == 2, out.stdout + out.stderr  # the job's config error: vton submit exits with its kind
    assert f"checkpoint.storage_path: {tmp_path}/ckpt is on each node's own disk, and the Ray cluster has 2 nodes" \
        in out.stdout + out.stderr


def test_shard_build_to_a_bucket_the_stack_does_not_hold_is_not_redirected_to_it(stack, tmp_path):
    """After `make demo` the stack's env file is on this machine; a destination naming another
    bucket must go where it says (AWS here: no credentials, so it fails) and not to the local server."""
    from shards.synthetic import synthesize

    synthesize(tmp_path / "data", n=4, size=(64, 48), seed=1)
    shell = {k: v for k, v in os.environ.items()
             if k not in {"VTON_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", "VTON_CREDENTIALS_FILE",
                          "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "VTON_BUCKET"}}
    shell.update(VTON_STACK_DIR=str(stack.settings.state_dir), AWS_EC2_METADATA_DISABLED="true",
                 AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    foreign = f"vton-not-the-stack-{uuid.uuid4().hex[:6]}"
    out = _vton("shard", "build", "--layout", "viton_hd", "--src", str(tmp_path / "data"), "--split", "train",
                "--dest", f"s3://{foreign}/shards/", "--workers", "1", env=shell, timeout=180)
    assert out.returncode != 0
    assert foreign in out.stderr
    buckets = {b["Name"] for b in stack.s3_client().list_buckets()["Buckets"]}
    assert foreign not in buckets
    ours = _vton("shard", "build", "--layout", "viton_hd", "--src", str(tmp_path / "data"), "--split", "train",
                 "--dest", f"s3://{stack.bucket}/tests/{uuid.uuid4().hex[:8]}/", "--workers", "1", env=shell, timeout=180)
    assert ours.returncode == 0, ours.stderr  # the stack's own bucket still reaches the stack
