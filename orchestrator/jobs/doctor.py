"""`vton doctor`: prove a cluster before a long run, as a Ray job fanning out to every node.

A first run on a new cluster tends to fail for reasons that have nothing to do with the model: a
driver older than the CUDA torch was built for, a node that cannot reach the bucket or MLflow, a
pretrained weight file missing where the workers start, Docker's 64 MB /dev/shm. Each costs a job
start (minutes) and the autoscaler's nodes. The doctor runs one task pinned to every alive node,
with the node's own environment (nothing of the workstation's is forwarded but an ``--env-file``),
plus a Ray Train all-reduce across ``ray.num_workers`` workers on the configured backend (NCCL on
GPUs, gloo on CPU), and reports one row per node and check with the fix for each failure.

Job side: ``python -m orchestrator.jobs.doctor`` (the config travels as ``VTON_RESOLVED_CONFIG``);
its last line is ``VTON_DOCTOR {json}``. Client side: ``run_doctor`` submits, waits and parses.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable

from orchestrator.config import Config

DOCTOR_PREFIX = "VTON_DOCTOR "
GiB = 1 << 30
#: Below these, a run fails or crawls: checkpoints and the extension cache need disk; DataLoader
#: workers pass batches through /dev/shm (Docker's default is 64 MB).
DISK_FAIL, DISK_WARN = 5 * GiB, 20 * GiB
SHM_FAIL, SHM_WARN = 512 << 20, 4 * GiB
ALLREDUCE_BYTES = 16 << 20


@dataclass
class Check:
    node: str  # a readable node name: "head" or its custom resource / IP, plus the id's prefix
    check: str  # gpu | storage | data | mlflow | weights | disk | shm | allreduce
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def table(self) -> str:
        width = max([len(c.node) for c in self.checks] + [4])
        rows = [f"{'node':{width}s}  {'check':9s}  {'':4s}  detail"]
        for c in self.checks:
            rows.append(f"{c.node:{width}s}  {c.check:9s}  {c.status.upper():4s}  {c.detail}")
            if c.fix and c.status != "ok":
                rows.append(f"{'':{width}s}  {'':9s}  {'':4s}  fix: {c.fix}")
        failed = sum(c.status == "fail" for c in self.checks)
        rows.append("cluster OK" if not failed else f"{failed} check(s) failed")
        return "\n".join(rows)

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "checks": [asdict(c) for c in self.checks]})

    @classmethod
    def from_json(cls, text: str) -> "DoctorReport":
        return cls([Check(**c) for c in json.loads(text)["checks"]])


# ------------------------------------------------------------------------------ on every node


def _check_gpu(expected: int) -> Check:
    import torch

    if expected == 0:
        return Check("", "gpu", "ok", "CPU node (no GPU resource)")
    if torch.version.cuda is None:
        return Check("", "gpu", "fail", f"torch {torch.__version__} is a CPU build on a node with {expected} GPU(s)",
                     "install the CUDA build of the pinned torch (docs/install.md), or run the project image")
    if not torch.cuda.is_available():
        return Check("", "gpu", "fail", f"torch built for CUDA {torch.version.cuda} sees no GPU (driver missing or "
                     "older than that CUDA needs)", "use a GPU image/AMI whose NVIDIA driver supports CUDA "
                     f"{torch.version.cuda} (cluster/aws/vton-cluster.yaml pins one)")
    count = torch.cuda.device_count()
    driver = torch._C._cuda_getDriverVersion()  # e.g. 12080 = CUDA 12.8
    driver_cuda = f"{driver // 1000}.{driver % 1000 // 10}"
    detail = f"{count} x {torch.cuda.get_device_name(0)}, driver for CUDA {driver_cuda}, torch CUDA {torch.version.cuda}"
    wanted = tuple(int(v) for v in torch.version.cuda.split(".")[:2])
    if (driver // 1000, driver % 1000 // 10) < wanted:
        return Check("", "gpu", "fail", detail, f"the driver is older than torch's CUDA {torch.version.cuda}: "
                     "use a newer GPU AMI / driver (>= 580 for CUDA 13)")
    if count < expected:
        return Check("", "gpu", "fail", f"{detail}; Ray advertises {expected}",
                     "a GPU is not visible to torch: check CUDA_VISIBLE_DEVICES and the device plugin")
    return Check("", "gpu", "ok", detail)


def _check_storage(cfg: Config, node: str) -> Check:
    """Write, read back and delete a small object where this run keeps its checkpoints."""
    from pyarrow import fs as pafs

    from orchestrator.checkpoints.storage import storage_location, storage_url

    url = storage_url(cfg)
    fix = ("give every node the bucket's endpoint and access: VTON_BUCKET (and for a non-AWS endpoint "
           "AWS_ENDPOINT_URL_S3 / VTON_S3_ENDPOINT) in the nodes' env file, keys through the instance role or "
           "VTON_CREDENTIALS_FILE")
    try:
        path, filesystem = storage_location(url)
        filesystem = filesystem or pafs.LocalFileSystem()
        probe = f"{path.rstrip('/')}/vton-doctor/{node}-{uuid.uuid4().hex[:8]}"
        payload = os.urandom(1 << 16)
        if isinstance(filesystem, pafs.LocalFileSystem):
            filesystem.create_dir(probe.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(probe) as out:
            out.write(payload)
        with filesystem.open_input_stream(probe) as stream:
            same = stream.read() == payload
        filesystem.delete_file(probe)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, reported with its cause
        return Check("", "storage", "fail", f"{url}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}", fix)
    if not same:
        return Check("", "storage", "fail", f"{url}: read back different bytes", fix)
    return Check("", "storage", "ok", f"{url}: write, read, delete")


def _check_data(cfg: Config) -> Check | None:
    if not cfg.data.manifest:
        return None
    from shards.manifest import Manifest

    try:
        manifest = Manifest.load(cfg.data.manifest)
    except Exception as exc:  # noqa: BLE001
        return Check("", "data", "fail", f"{cfg.data.manifest}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
                     "shard the dataset there (`vton shard build`) and give the nodes access to its bucket")
    return Check("", "data", "ok", f"{cfg.data.manifest}: {manifest.num_samples} samples in {len(manifest.shards)} shards")


def _check_mlflow(cfg: Config) -> Check:
    uri = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not cfg.tracking.enabled:
        return Check("", "mlflow", "ok", "tracking.enabled=false")
    if not uri:
        return Check("", "mlflow", "fail", "MLFLOW_TRACKING_URI is not set on this node",
                     "set MLFLOW_TRACKING_URI in the nodes' env file (cluster.env / configmap)")
    try:
        from mlflow import MlflowClient

        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001
        return Check("", "mlflow", "fail", f"{uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
                     "make the MLflow server reachable from the nodes (security group, service, URL)")
    return Check("", "mlflow", "ok", uri)


def _check_weights(cfg: Config) -> Check:
    from orchestrator.recipes import build_recipe_from_config
    from vton_models import weights

    needed = set(build_recipe_from_config(cfg).required_weights())
    rows = weights.status()
    missing_needed = [r for r in rows if r.name in needed and not r.present]
    missing_other = [r.name for r in rows if r.name not in needed and not r.present]
    home = os.environ.get("TORCH_HOME", "<unset>")
    if missing_needed:
        return Check("", "weights", "fail", f"missing {', '.join(r.name for r in missing_needed)} (needed by "
                     f"{cfg.model.recipe} with these loss weights) under TORCH_HOME={home}",
                     f"run `{weights.PREPARE_COMMAND}` in the image or the node setup (cluster/docker/Dockerfile)")
    present = sorted(r.name for r in rows if r.present)
    detail = f"TORCH_HOME={home}: {', '.join(present) or 'none'}" + (
        f"; not needed by this run, missing: {', '.join(missing_other)}" if missing_other else "")
    return Check("", "weights", "warn" if missing_other else "ok", detail,
                 f"`{weights.PREPARE_COMMAND}` where the image is built (evaluation needs the FID and LPIPS files)")


def _check_space(check: str, path: str, fail: int, warn: int, fix: str) -> Check:
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return Check("", check, "fail", f"{path}: {exc}", fix)
    detail = f"{path}: {usage.free / GiB:.1f} GiB free of {usage.total / GiB:.1f} GiB"
    status = "fail" if usage.free < fail else "warn" if usage.free < warn else "ok"
    return Check("", check, status, detail, fix)


def node_checks(cfg_dict: dict, node: str, gpus: int) -> list[dict]:
    """Everything one node can check about itself (runs as a task pinned to it)."""
    import vton_models  # noqa: F401  - torchvision CPU shim first

    from orchestrator import credentials
    from orchestrator.config import config_from_dict

    credentials.load()  # keys by reference, as the trainer's workers load them
    cfg = config_from_dict(cfg_dict)
    found = [_check_gpu(gpus), _check_storage(cfg, node), _check_data(cfg), _check_mlflow(cfg), _check_weights(cfg),
             _check_space("disk", os.getcwd(), DISK_FAIL, DISK_WARN,
                          "give the nodes bigger root volumes (checkpoints, extension and dataset caches)"),
             _check_space("shm", "/dev/shm", SHM_FAIL, SHM_WARN,
                          "raise /dev/shm: docker --shm-size, or a memory emptyDir on /dev/shm in Kubernetes")]
    out = []
    for check in found:
        if check is not None:
            check.node = node
            out.append(asdict(check))
    return out


# ------------------------------------------------------------------------------ all-reduce


def _allreduce_worker(config: dict) -> None:
    import ray.train
    import torch
    import torch.distributed as dist

    context = ray.train.get_context()
    device = torch.device(f"cuda:{torch.cuda.current_device()}") if torch.cuda.is_available() and config["gpu"] \
        else torch.device("cpu")
    tensor = torch.ones(ALLREDUCE_BYTES // 4, device=device)
    dist.all_reduce(tensor)  # warm-up: connections are set up on first use
    if device.type == "cuda":
        torch.cuda.synchronize()
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        dist.all_reduce(tensor)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / rounds
    world = context.get_world_size()
    expected = float(world ** (rounds + 1))  # every all-reduce multiplies the ones by the world size
    correct = bool(torch.isclose(tensor[0].double().cpu(), torch.tensor(expected, dtype=torch.float64)))
    # Bus bandwidth, as nccl-tests report it: 2 (n - 1) / n of the buffer crosses each link.
    busbw = ALLREDUCE_BYTES * 2 * (world - 1) / world / seconds / 1e9 if world > 1 else 0.0
    import ray

    # Through a queue, not ray.train.report: a report's metrics reach the driver only with a
    # checkpoint, which would need the very storage this check must not depend on.
    config["queue"].put({"rank": context.get_world_rank(), "node": ray.get_runtime_context().get_node_id(),
                         "seconds": seconds, "busbw_gbps": busbw, "correct": correct})


def _check_allreduce(cfg: Config, names: dict[str, str]) -> list[Check]:
    import tempfile

    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue

    backend = cfg.strategy.backend if cfg.strategy.backend != "auto" else ("nccl" if cfg.ray.use_gpu else "gloo")
    workers = cfg.ray.num_workers
    label = f"{workers} worker(s), {backend}"
    fix = ("NCCL: the nodes must reach each other on all ports (security group / placement group; EFA for "
           "multi-node), NCCL_SOCKET_IFNAME if several interfaces; gloo: the same, on the workers' TCP ports")
    queue = Queue()
    try:
        with tempfile.TemporaryDirectory(prefix="vton-doctor-") as storage:
            result = TorchTrainer(
                _allreduce_worker, train_loop_config={"gpu": cfg.ray.use_gpu, "queue": queue},
                torch_config=TorchConfig(backend=backend),
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=cfg.ray.use_gpu,
                                             resources_per_worker={"CPU": cfg.ray.cpus_per_worker},
                                             placement_strategy=cfg.ray.placement_strategy),
                run_config=RunConfig(name=f"vton-doctor-{uuid.uuid4().hex[:8]}", storage_path=storage),
            ).fit()
    except Exception as exc:  # noqa: BLE001
        return [Check("cluster", "allreduce", "fail", f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                      fix)]
    if result.error:
        return [Check("cluster", "allreduce", "fail", f"{label}: {str(result.error).splitlines()[0][:200]}", fix)]
    ranks = sorted((queue.get(timeout=10) for _ in range(queue.qsize())), key=lambda r: r["rank"])
    if len(ranks) != workers:
        return [Check("cluster", "allreduce", "fail", f"{label}: {len(ranks)} of {workers} workers reported", fix)]
    return [Check(names.get(r["node"], "cluster"), "allreduce", "ok" if r["correct"] else "fail",
                  f"{label}, rank {r['rank']}: {ALLREDUCE_BYTES >> 20} MiB in {r['seconds'] * 1000:.1f} ms, "
                  f"bus bandwidth {r['busbw_gbps']:.2f} GB/s" + ("" if r["correct"] else ", WRONG SUM"), fix)
            for r in ranks]


# ------------------------------------------------------------------------------ the job


def node_names(nodes: list[dict]) -> dict[str, str]:
    """node id -> "head" / its custom resource (the local stack's vton_node_<i>) / its IP, + id prefix."""
    names = {}
    for node in nodes:
        custom = sorted(r for r in node.get("Resources", {}) if r.startswith("vton_node_"))
        head = "node:__internal_head__" in node.get("Resources", {})
        label = "head" if head else (custom[0] if custom else node.get("NodeManagerAddress", "node"))
        names[node["NodeID"]] = f"{label}/{node['NodeID'][:8]}"
    return names


def diagnose(cfg: Config) -> DoctorReport:
    """On the cluster (``ray.init`` done): every node's checks, then the all-reduce."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    names = node_names(nodes)
    remote = ray.remote(node_checks)
    refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(cfg.to_dict(), names[n["NodeID"]], int(n.get("Resources", {}).get("GPU", 0))) for n in nodes]
    checks = [Check(**c) for part in ray.get(refs) for c in part]
    return DoctorReport(checks + _check_allreduce(cfg, names))


def main(argv: list[str] | None = None) -> int:
    from orchestrator.jobs.entrypoint import resolve

    cfg = resolve(sys.argv[1:] if argv is None else argv, required=False)
    import ray

    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=True)
    report = diagnose(cfg)
    print(report.table(), flush=True)
    print(DOCTOR_PREFIX + report.to_json(), flush=True)
    return 0


# ------------------------------------------------------------------------------ the client


def run_doctor(cfg: Config, address: str | None = None, env_file: str | None = None,
               on_line: Callable[[str], None] = lambda _line: None) -> DoctorReport:
    """Submit the doctor job, wait for it, return its report (RuntimeError if it produced none)."""
    from orchestrator.jobs import submit as jobs

    client, job_id = jobs.submit(cfg, address=address, env_file=env_file, entrypoint="python -m orchestrator.jobs.doctor",
                                 kind="doctor")
    outcome = jobs.wait(client, job_id, on_line)
    for line in reversed(outcome.logs.splitlines()):
        if line.startswith(DOCTOR_PREFIX):
            return DoctorReport.from_json(line[len(DOCTOR_PREFIX):])
    tail = "\n".join(outcome.logs.splitlines()[-30:])
    raise RuntimeError(f"doctor job {job_id} ended {outcome.status} without a report; last log lines:\n{tail}")


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = ["Check", "DoctorReport", "diagnose", "run_doctor"]
