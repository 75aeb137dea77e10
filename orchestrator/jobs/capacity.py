"""What a run can get where it runs: GPUs and nodes up now, and what the autoscaler can add.

A cluster launched with ``min_workers`` below what a job needs is the normal case: the autoscaler
adds GPU nodes once the job's worker group asks for them (its pending placement group is the
request). So preflight judges ``ray.num_workers`` against what the cluster *can* reach, from the
autoscaler's node-group limits in the GCS, not against the GPUs that happen to be up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    gpus: int  # visible now
    gpus_reachable: int  # with every node the autoscaler may add (== gpus without an autoscaler)
    nodes: int  # alive now
    nodes_reachable: int
    where: str  # for messages: "this machine" or "the Ray cluster"

    @classmethod
    def this_machine(cls, gpus: int | None = None) -> "Capacity":
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(gpus, gpus, 1, 1, "this machine")

    @classmethod
    def of_ray_cluster(cls) -> "Capacity":
        """The cluster this process is connected to (``ray.init`` done)."""
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        gpus_reachable, nodes_reachable = gpus, nodes
        limits = _autoscaler_limits()
        if limits is not None:
            max_gpus, max_nodes = limits
            gpus_reachable, nodes_reachable = max(gpus, max_gpus), max(nodes, max_nodes)
        return cls(gpus, gpus_reachable, nodes, nodes_reachable, "the Ray cluster")


def _autoscaler_limits() -> tuple[int, int] | None:
    """(GPUs, nodes) the autoscaler's node groups allow at most; None without an autoscaler.

    Read from the cluster config the autoscaler publishes in the GCS (what ``ray status`` shows);
    an unlimited group counts as unbounded."""
    import sys

    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - no autoscaler state (a local head): nothing can be added
        return None
    if config is None or not config.node_group_configs:
        return None
    gpus = state.get_max_resources_from_cluster_config() or {}
    nodes = 0
    for group in config.node_group_configs:
        if group.max_count == -1:
            return int(gpus.get("GPU", 0)), sys.maxsize
        nodes += group.max_count
    return int(gpus.get("GPU", 0)), nodes
