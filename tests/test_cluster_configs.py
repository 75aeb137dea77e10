"""The real-cluster configs are valid for the tools that read them, consistent with the project,
and carry no secrets: the Ray cluster-launcher YAML against the schema shipped inside the ``ray``
package, the KubeRay manifests against the fields KubeRay requires, the RayJob entrypoint against
the project's own config loader. The shell and Python snippets the nodes run are executed here with
stand-ins for torch and boto3, so their logic is tested, not only their text."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import ray
import yaml

from cluster.settings import SECRET_KEYS
from orchestrator.jobs.entrypoint import resolve

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
AWS_YAML = CLUSTER / "aws" / "vton-cluster.yaml"
K8S = CLUSTER / "k8s"
DOCKERFILE = CLUSTER / "docker" / "Dockerfile"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
CONFIG_FILES = [AWS_YAML, *sorted(K8S.glob("*.yaml")), DOCKERFILE]
IMAGE_ROOT = "/app"  # WORKDIR of cluster/docker/Dockerfile
IMAGE_TORCH_HOME = "/home/ray/.cache/torch"
DLAMI_SSM = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-"
CODE_DIRS = ("orchestrator", "shards", "vton_models", "tune", "cluster", "configs")


def _ray_schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _aws() -> dict:
    return yaml.safe_load(AWS_YAML.read_text())


def _manifest(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


def _cluster_specs() -> Iterator[tuple[str, dict]]:
    yield "raycluster.yaml", _manifest("raycluster.yaml")["spec"]
    yield "rayjob.yaml", _manifest("rayjob.yaml")["spec"]["rayClusterSpec"]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


# ------------------------------------------------------------------------------ cluster launcher


def test_cluster_yaml_validates_against_the_schema_in_the_ray_package():
    config = _aws()
    jsonschema.validate(config, _ray_schema())
    # Ray's own checks after filling in its defaults (what `ray up` runs before touching AWS).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_the_schema_check_is_not_vacuous():
    config = _aws()
    config["available_node_types"]["gpu_worker"]["min_workers"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _ray_schema())


def test_cluster_yaml_has_a_head_and_an_autoscaling_gpu_group():
    config = _aws()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0  # training never lands on the head
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers)
    assert all(0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"] for t in workers)
    assert 0 < config["idle_timeout_minutes"] <= 60  # idle GPU nodes go away
    # Endpoints come from the synced env file, sourced before Ray starts on every node.
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any(". /home/ray/vton.env" in c and "ray start" in c for c in config[key]), key


def test_every_aws_node_type_runs_a_pinned_gpu_ami_that_ray_passes_through():
    """Without ImageId Ray launches its default Deep Learning AMI, whose CUDA 11.2-era driver cannot
    run the CUDA 13 torch wheel; every node type names a current GPU AMI, and Ray keeps it."""
    from ray.autoscaler._private.aws.config import DEFAULT_AMI, _check_ami
    from ray.autoscaler._private.util import prepare_config

    config = prepare_config(_aws())
    declared = {}
    for name, node_type in config["available_node_types"].items():
        image = node_type["node_config"].get("ImageId", "")
        assert image.lower() not in ("", "latest_dlami"), f"{name}: no ImageId, so Ray's CUDA 11.2 AMI"
        assert re.fullmatch(r"ami-[0-9a-f]{8,17}", image) or (
            image.startswith("resolve:ssm:" + DLAMI_SSM) and image.endswith("/ami-id")
        ), f"{name}: {image!r} is neither a fixed ami-... nor the DLAMI Base OSS Nvidia Driver parameter"
        declared[name] = image
    _check_ami(config)  # what `ray up` runs: it may only fill in an empty ImageId
    for name, node_type in config["available_node_types"].items():
        assert node_type["node_config"]["ImageId"] == declared[name], name
        assert declared[name] not in DEFAULT_AMI.values()


def _setup_commands(config: dict, node_type: str) -> list[str]:
    """The setup commands Ray runs on a node of this type (a node type's own list replaces both)."""
    own = config["available_node_types"][node_type].get("worker_setup_commands")
    if node_type == config["head_node_type"]:
        return config.get("setup_commands", []) + config.get("head_setup_commands", [])
    if own is not None:
        return own
    return config.get("setup_commands", []) + config.get("worker_setup_commands", [])


def _python_code(command: str) -> str:
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"], argv[:2]
    return argv[2]


_FAKE_TORCH = '''
import os
__version__ = "2.13.0+fake"
class version:
    cuda = "13.0"
class cuda:
    @staticmethod
    def is_available():
        return os.environ["FAKE_CUDA_AVAILABLE"] == "1"
    @staticmethod
    def device_count():
        return int(os.environ["FAKE_DEVICE_COUNT"])
'''


def test_gpu_nodes_check_that_torch_can_use_every_gpu_of_the_node(tmp_path):
    """`assert torch.version.cuda` passes on a node whose driver is too old for the wheel; the check
    asks CUDA itself, for exactly the node type's GPU count, and names the fix when it fails."""
    config = _aws()
    head = config["head_node_type"]
    assert not any("torch.cuda" in c for c in _setup_commands(config, head)), "the head has no GPU"
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(_FAKE_TORCH)

    for name, node_type in config["available_node_types"].items():
        if name == head:
            continue
        commands = _setup_commands(config, name)
        assert not any("assert torch.version.cuda" in c for c in commands), name
        checks = [c for c in commands if "torch.cuda.is_available()" in c and "torch.cuda.device_count()" in c]
        assert len(checks) == 1, f"{name}: no GPU check in its setup commands"
        gpus = node_type["resources"]["GPU"]
        run_options = " ".join(node_type.get("docker", {}).get("worker_run_options", []))
        assert "--gpus all" in run_options, name
        assert f"-e VTON_EXPECTED_GPUS={gpus} " in run_options + " ", f"{name}: VTON_EXPECTED_GPUS != resources.GPU"

        code = _python_code(checks[0])
        for available, count, ok in ((True, gpus, True), (False, 0, False), (True, gpus - 1, False),
                                     (True, gpus + 1, False)):
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(fake), "VTON_EXPECTED_GPUS": str(gpus),
                   "FAKE_CUDA_AVAILABLE": "1" if available else "0", "FAKE_DEVICE_COUNT": str(count)}
            result = _run([sys.executable, "-c", code], env=env, cwd=tmp_path)
            assert (result.returncode == 0) == ok, (name, available, count, result.stderr)
            if not ok:
                assert f"sees {count if available else 0} GPU" in result.stderr
                assert "AMI" in result.stderr and "driver" in result.stderr, result.stderr


def _commands_of(config: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    commands = [c for key in keys for c in config.get(key, [])]
    for node_type in config["available_node_types"].values():
        for key in ("initialization_commands", "worker_setup_commands"):
            commands += node_type.get(key, [])
    return commands


def test_aws_nodes_run_the_project_image_and_install_nothing():
    """An autoscaled node pulls the built image (CUDA stack, code, weights) instead of pip-installing
    the CUDA stack; only the endpoint file is synced."""
    config = _aws()
    image = config["docker"]["image"]
    assert not image.startswith("rayproject/"), "the AWS nodes must run the project image, not Ray's base"
    for key in ("head_image", "worker_image"):
        assert key not in config["docker"], f"docker.{key} would be a second place naming the image"
    for node_type in config["available_node_types"].values():
        assert "worker_image" not in node_type.get("docker", {})
    k8s_images = {c["image"] for _, spec in _cluster_specs()
                  for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
                  for c in group["template"]["spec"]["containers"]}
    assert k8s_images == {image}, "one placeholder image name across the cluster configs"
    for command in _commands_of(config):
        assert not re.search(r"\b(pip|uv|conda)\s+install\b", command), command
    assert config["file_mounts"] == {"/home/ray/vton.env": "~/.vton/cluster.env"}
    assert "vton weights prepare" in config["setup_commands"]  # no-op on the image, fetches otherwise


def _fake_boto3(root: Path) -> None:
    (root / "boto3").mkdir(parents=True)
    (root / "boto3" / "__init__.py").write_text(
        "import os\n"
        "class _SecretsManager:\n"
        "    def get_secret_value(self, SecretId):\n"
        "        assert SecretId == os.environ['VTON_SECRET_ID'], SecretId\n"
        "        return {'SecretString': os.environ['FAKE_SECRET_STRING']}\n"
        "def client(name, **kwargs):\n"
        "    assert name == 'secretsmanager', name\n"
        "    return _SecretsManager()\n"
    )


def test_nodes_fetch_the_s3_keys_with_boto3_into_a_0600_file_only_when_a_secret_is_named(tmp_path):
    config = _aws()
    [command] = [c for c in config["setup_commands"] if "secretsmanager" in c]
    assert "boto3" in command
    fake = tmp_path / "fake"
    _fake_boto3(fake)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    (bin_dir / "python").chmod(0o755)
    creds = tmp_path / "home" / ".vton-credentials"
    creds.parent.mkdir()

    def run(env_lines: list[str], secret: str = "") -> subprocess.CompletedProcess:
        env_file = tmp_path / "vton.env"
        env_file.write_text("\n".join(env_lines) + "\n")
        script = command.replace("/home/ray/vton.env", str(env_file))
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(fake), "FAKE_SECRET_STRING": secret,
               "HOME": str(tmp_path / "home")}
        return _run(["bash", "-c", script], env=env, cwd=tmp_path)

    base = ["VTON_BUCKET=my-vton-bucket", "AWS_DEFAULT_REGION=us-west-2"]
    result = run(base)
    assert result.returncode == 0, result.stderr
    assert not creds.exists(), "no secret named, so no key file"

    referenced = base + ["VTON_SECRET_ID=vton/s3-keys", f"VTON_CREDENTIALS_FILE={creds}"]
    result = run(referenced, secret="AWS_ACCESS_KEY_ID=id-from-secret\nAWS_SECRET_ACCESS_KEY=k-from-secret\n")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert creds.read_text() == "AWS_ACCESS_KEY_ID=id-from-secret\nAWS_SECRET_ACCESS_KEY=k-from-secret\n"

    creds.chmod(0o644)  # a file left over with a wider mode is narrowed again
    result = run(referenced, secret=json.dumps({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert creds.read_text() == "AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n"

    result = run(base + ["VTON_SECRET_ID=vton/s3-keys"], secret="X=1")
    assert result.returncode != 0 and "VTON_CREDENTIALS_FILE" in result.stderr


_AWS_CLI = re.compile(r"(?<![\w./$-])aws\s+[a-z][a-z0-9-]*")


def _executable_text(path: Path) -> list[str]:
    """What a file under cluster/ runs: every string of a YAML file (comments dropped by the
    parser), the non-comment lines of anything else."""
    if path.suffix in (".yaml", ".yml"):
        return [s for doc in yaml.safe_load_all(path.read_text()) for s in _strings(doc)]
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def test_nothing_under_cluster_calls_the_aws_cli():
    """The nodes run Ray's image, which has no `aws` CLI: every AWS call goes through boto3."""
    files = [p for p in CLUSTER.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert AWS_YAML in files and DOCKERFILE in files
    for path in files:
        for text in _executable_text(path):
            assert not _AWS_CLI.search(text), f"{path.relative_to(REPO)}: {_AWS_CLI.search(text).group(0)!r}"
    # The pattern finds what it is for, and not bucket URLs, paths or prose about AWS.
    assert _AWS_CLI.search("umask 077 && aws secretsmanager get-secret-value --secret-id x")
    assert _AWS_CLI.search("x=$(aws ssm get-parameter --name y)")
    for harmless in ("s3://my-bucket/aws data", "/opt/aws ", "AWS Deep Learning AMI", "--aws profile"):
        assert not _AWS_CLI.search(harmless), harmless


# ------------------------------------------------------------------------------ image


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        op, _, args = pending.strip().partition(" ")
        out.append((op.upper(), args.strip()))
        pending = ""
    return out


def test_dockerfile_installs_the_dependencies_before_the_code_and_bakes_the_weights():
    steps = _dockerfile_instructions()
    code_copies = [i for i, (op, args) in enumerate(steps)
                   if op == "COPY" and any(re.search(rf"(^|\s){d}(\s|/|$)", args) for d in CODE_DIRS)]
    assert code_copies
    first_code = min(code_copies)
    dep_installs = [i for i, (op, args) in enumerate(steps) if op == "RUN" and "-c constraints/cpu.txt" in args]
    assert len(dep_installs) == 1, "ONE pip command with the constraints file"
    dep = dep_installs[0]
    assert dep < first_code, "a code edit must not reinstall torch"
    before = [args for op, args in steps[:dep] if op == "COPY"]
    assert all(re.fullmatch(r"(--chown=\S+\s+)?(pyproject\.toml|constraints)\s+\S+", a) for a in before), before
    assert " -e ." not in steps[dep][1] and "-r " in steps[dep][1]

    # The dependency list is pyproject.toml's, read at build time: run that snippet here.
    snippet = re.search(r'python -c "([^"]*)"', steps[dep][1]).group(1)
    listed = _run([sys.executable, "-c", snippet], cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert listed.stdout.split() == expected

    installs = [i for i, (op, args) in enumerate(steps) if op == "RUN" and "pip install" in args and "--no-deps" in args
                and re.search(r"-e \.(\s|$)", args)]
    assert installs and min(installs) > max(code_copies), "the project itself, after its code, without deps"
    prepare = [i for i, (op, args) in enumerate(steps) if op == "RUN" and "vton weights prepare" in args]
    assert prepare and min(prepare) >= min(installs)
    env = [i for i, (op, args) in enumerate(steps) if op == "ENV" and f"TORCH_HOME={IMAGE_TORCH_HOME}" in args]
    assert env and min(env) < min(prepare), "TORCH_HOME is fixed in the image before the weights land there"
    assert not any("DS_BUILD_" in args for _, args in steps), "no ahead-of-time DeepSpeed op builds"
    assert steps[[op for op, _ in steps].index("WORKDIR")][1] == IMAGE_ROOT


def test_images_run_the_ray_version_the_project_pins():
    pinned = next(line.split("==")[1] for line in (REPO / "constraints" / "cpu.txt").read_text().splitlines()
                  if line.startswith("ray=="))
    assert pinned == ray.__version__
    base = re.search(r"^FROM rayproject/ray:(\S+)", DOCKERFILE.read_text(), re.M).group(1)
    assert base.startswith(f"{pinned}-") and "gpu" in base
    for _, spec in _cluster_specs():
        assert spec["rayVersion"] == pinned
        images = {c["image"] for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
                  for c in group["template"]["spec"]["containers"]}
        assert len(images) == 1, images  # head and workers run the same build


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


_QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMGT]i?)?", str(quantity)).groups()
    return int(number) * (_QUANTITY[unit] if unit else 1)


def test_every_kuberay_group_sizes_its_object_store_to_its_shared_memory():
    """Ray's default object store is 30% of the pod's memory (54 GB on a GPU pod), more than the
    /dev/shm volume holds; each group names a size that fits its memory-backed /dev/shm."""
    assert _bytes("32Gi") == 32 * 2**30 and _bytes("17179869184") == 16 * 2**30
    for name, spec in _cluster_specs():
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            store = group["rayStartParams"].get("object-store-memory")
            assert store and store.isdigit(), (name, group.get("groupName", "head"))
            pod = group["template"]["spec"]
            container = pod["containers"][0]
            [mount] = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"]
            [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            assert volume["emptyDir"]["medium"] == "Memory"
            shm = _bytes(volume["emptyDir"]["sizeLimit"])
            assert int(store) <= shm * 3 // 4, (name, "leave /dev/shm room for DataLoader batches")
            assert shm < _bytes(container["resources"]["limits"]["memory"]), name


def test_kuberay_pods_use_the_service_account_and_gpu_pods_land_on_gpu_nodes():
    for name, spec in _cluster_specs():
        accounts = {pod.get("serviceAccountName") for pod in _pod_specs(spec)}
        assert accounts == {"vton-ray"}, (name, accounts)  # the IRSA route of docs/deploy.md
        for group in spec["workerGroupSpecs"]:
            pod = group["template"]["spec"]
            if "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]:
                continue
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
            assert group["minReplicas"] == 0, f"{name}: idle GPU pods must be able to go away"
        assert 0 < spec["autoscalerOptions"]["idleTimeoutSeconds"] <= 3600
        for pod in _pod_specs(spec):
            for container in pod["containers"]:
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref:  # with IRSA there is no key secret, and the pods must still start
                        assert ref.get("optional") is True, (name, entry["name"])
    doc = DEPLOY_DOC.read_text()
    assert "kubectl create serviceaccount vton-ray" in doc and "--name vton-ray" in doc


def test_rayjob_has_a_deadline():
    spec = _manifest("rayjob.yaml")["spec"]
    assert isinstance(spec["activeDeadlineSeconds"], int) and 3600 <= spec["activeDeadlineSeconds"] <= 14 * 86400
    assert spec["shutdownAfterJobFinishes"] is True


def test_rayjob_embeds_the_raycluster_spec_and_runs_the_trainer_entrypoint(monkeypatch):
    monkeypatch.setenv("VTON_BUCKET", "my-vton-bucket")
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


def _shell_words(shell: str, words: str, env: dict[str, str]) -> list[str]:
    """The argv a shell makes of ``words`` (KubeRay pastes the entrypoint into ``bash -c``)."""
    result = _run([shell, "-c", "printf '%s\\0' " + words], env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\0")[:-1]


def test_rayjob_entrypoint_names_the_bucket_only_through_vton_bucket(monkeypatch):
    """The bucket is the user's, named once in cluster.env: the entrypoint says ${VTON_BUCKET}, and
    neither the submitter pod's shell (no configmap there) nor the job driver's shell expands it;
    the config loader does, from the head pod's environment."""
    entrypoint = _manifest("rayjob.yaml")["spec"]["entrypoint"]
    urls = re.findall(r"s3://[^\s'\"]*", entrypoint)
    assert len(urls) == 2 and all(u.startswith("s3://${VTON_BUCKET}/") for u in urls), urls

    submitter_env = {"PATH": os.environ["PATH"]}  # the submitter pod has no VTON_BUCKET
    argv = _shell_words("bash", entrypoint, submitter_env)
    assert argv == _shell_words("bash", entrypoint, {**submitter_env, "VTON_BUCKET": "not-this-one"})
    # `ray job submit -- ARGS` quotes each argument again (shlex.join); the job supervisor runs the
    # result with shell=True on the head.
    driver_argv = _shell_words("/bin/sh", shlex.join(argv), {**submitter_env, "VTON_BUCKET": "not-this-one"})
    assert driver_argv == argv
    overrides = dict(a.split("=", 1) for a in argv[4:])
    assert overrides["data.manifest"] == "s3://${VTON_BUCKET}/shards/viton_hd/train/manifest.json"
    assert overrides["data.val_manifest"] == "s3://${VTON_BUCKET}/shards/viton_hd/test/manifest.json"

    monkeypatch.setenv("VTON_BUCKET", "my-vton-bucket")
    cfg = resolve([str(REPO / argv[3][len(IMAGE_ROOT) + 1:]), *argv[4:]])
    assert cfg.data.manifest == "s3://my-vton-bucket/shards/viton_hd/train/manifest.json"
    assert cfg.data.val_manifest == "s3://my-vton-bucket/shards/viton_hd/test/manifest.json"


# ------------------------------------------------------------------------------ docs


def test_deploy_doc_names_the_users_bucket_consistently():
    doc = DEPLOY_DOC.read_text()
    urls = re.findall(r"s3://[^\s`'\")]*", doc)
    assert urls
    bad = [u for u in urls if not re.match(r"s3://(\$VTON_BUCKET|\$\{VTON_BUCKET\}|my-vton-bucket)(/|$)", u)]
    assert not bad, bad
    assert "VTON_BUCKET=my-vton-bucket" in doc  # the env file the commands read
    # The walk checks the cluster before the first run.
    assert doc.index("vton doctor") < doc.index("vton submit configs/")


def test_deploy_doc_multinode_node_type_is_valid_for_ray():
    """The 8-GPU EFA node type the doc tells users to paste is valid against Ray's schema and
    its own checks, and keeps the GPU check consistent."""
    blocks = re.findall(r"```yaml\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    [snippet] = [yaml.safe_load(b) for b in blocks if "InterfaceType: efa" in b]
    config = _aws()
    config["available_node_types"].update(snippet["available_node_types"])
    jsonschema.validate(config, _ray_schema())
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))
    for name, node_type in snippet["available_node_types"].items():
        node_config = node_type["node_config"]
        assert node_config["Placement"]["GroupName"]
        assert any(ni["InterfaceType"] == "efa" for ni in node_config["NetworkInterfaces"])
        assert node_config["ImageId"] == config["available_node_types"]["gpu_worker"]["node_config"]["ImageId"]
        run_options = " ".join(node_type["docker"]["worker_run_options"]) + " "
        assert f"-e VTON_EXPECTED_GPUS={node_type['resources']['GPU']} " in run_options and "--gpus all" in run_options
        assert "worker_setup_commands" not in node_type  # it would replace the common setup commands


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
