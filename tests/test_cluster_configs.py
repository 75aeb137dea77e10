"""The real-cluster configs are valid for the tools that read them, consistent with the project,
and carry no secrets: the Ray cluster-launcher YAML against the schema shipped inside the ``ray``
package, the KubeRay manifests against the fields KubeRay requires, the RayJob entrypoint against
the project's own config loader."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from cluster.settings import SECRET_KEYS
from orchestrator.jobs.entrypoint import resolve

REPO = Path(__file__).resolve().parents[1]
AWS_YAML = REPO / "cluster" / "aws" / "vton-cluster.yaml"
K8S = REPO / "cluster" / "k8s"
DOCKERFILE = REPO / "cluster" / "docker" / "Dockerfile"
CONFIG_FILES = [AWS_YAML, *sorted(K8S.glob("*.yaml")), DOCKERFILE]
IMAGE_ROOT = "/app"  # WORKDIR of cluster/docker/Dockerfile


def _ray_schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _manifest(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


# ------------------------------------------------------------------------------ cluster launcher


def test_cluster_yaml_validates_against_the_schema_in_the_ray_package():
    config = yaml.safe_load(AWS_YAML.read_text())
    jsonschema.validate(config, _ray_schema())
    # Ray's own checks after filling in its defaults (what `ray up` runs before touching AWS).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_the_schema_check_is_not_vacuous():
    config = yaml.safe_load(AWS_YAML.read_text())
    config["available_node_types"]["gpu_worker"]["min_workers"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _ray_schema())


def test_cluster_yaml_has_a_head_and_an_autoscaling_gpu_group():
    config = yaml.safe_load(AWS_YAML.read_text())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0  # training never lands on the head
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers)
    assert all(0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"] for t in workers)
    # Endpoints come from the synced env file, sourced before Ray starts on every node.
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any(". /home/ray/vton.env" in c and "ray start" in c for c in config[key]), key
    assert any("-c /home/ray/vton-train/constraints/cpu.txt" in c for c in config["setup_commands"])


# ------------------------------------------------------------------------------ KubeRay


def _pod_specs(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def test_raycluster_carries_the_fields_kuberay_requires():
    doc = _manifest("raycluster.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster" and doc["metadata"]["name"]
    spec = doc["spec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        gpu = group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        assert int(gpu) >= 1
    # KubeRay passes rayStartParams to `ray start` as strings; a YAML number here is rejected.
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), group["rayStartParams"]


def test_rayjob_embeds_the_raycluster_spec_and_runs_the_trainer_entrypoint():
    job = _manifest("rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["rayClusterSpec"] == _manifest("raycluster.yaml")["spec"]
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "orchestrator.jobs.entrypoint"]
    # The config path is inside the image (/app = this repository); the overrides must resolve.
    config_path, overrides = argv[3], argv[4:]
    assert config_path.startswith(IMAGE_ROOT + "/")
    cfg = resolve([str(REPO / config_path[len(IMAGE_ROOT) + 1:]), *overrides])
    assert cfg.ray.use_gpu
    gpus = sum(int(g["replicas"]) * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
               for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"])
    assert cfg.ray.num_workers <= gpus, "the job asks for more GPU workers than the cluster starts with"
    yaml.safe_load(job["spec"]["runtimeEnvYAML"])


def test_images_run_the_ray_version_the_project_pins():
    pinned = next(line.split("==")[1] for line in (REPO / "constraints" / "cpu.txt").read_text().splitlines()
                  if line.startswith("ray=="))
    assert pinned == ray.__version__
    base = re.search(r"^FROM rayproject/ray:(\S+)", DOCKERFILE.read_text(), re.M).group(1)
    assert base.startswith(f"{pinned}-")
    assert yaml.safe_load(AWS_YAML.read_text())["docker"]["image"] == f"rayproject/ray:{base}"
    images = {c["image"] for pod in _pod_specs(_manifest("raycluster.yaml")["spec"]) for c in pod["containers"]}
    assert len(images) == 1, images  # head and workers run the same build


# ------------------------------------------------------------------------------ secrets


def test_kubernetes_credentials_come_from_secret_refs_only():
    for name in ("raycluster.yaml", "rayjob.yaml"):
        doc = _manifest(name)
        cluster_spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        for pod in _pod_specs(cluster_spec):
            for container in pod["containers"]:
                env = {e["name"]: e for e in container.get("env", [])}
                assert SECRET_KEYS - {"AWS_SESSION_TOKEN"} <= set(env), (name, container["name"])
                for key, entry in env.items():
                    if key in SECRET_KEYS or re.search(r"SECRET|PASSWORD|TOKEN", key):
                        assert "value" not in entry and entry["valueFrom"]["secretKeyRef"]["name"], (name, key)
    for path in K8S.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] != "Secret", f"{path.name}: secrets are created with kubectl, not committed"


_SECRET_PATTERNS = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # A key-like name given a literal value (not a reference such as $VAR or secretKeyRef).
    re.compile(r"(?i)\b(aws_secret_access_key|secret_key|password|api_key|token)\b\s*[:=]\s*['\"]?(?![$<{])[A-Za-z0-9/+=_\-]{8,}"),
]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_secret_in_plain_text(path):
    text = path.read_text()
    for pattern in _SECRET_PATTERNS:
        assert not pattern.search(text), f"{path.name}: {pattern.search(text).group(0)!r} looks like a secret"


def test_the_secret_scan_catches_what_it_is_for():
    leaks = ["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "id: AKIAIOSFODNN7EXAMPLE",
             "password: hunter2hunter2"]
    for leak in leaks:
        assert any(p.search(leak) for p in _SECRET_PATTERNS), leak
    assert not any(p.search("key: AWS_SECRET_ACCESS_KEY") for p in _SECRET_PATTERNS)
