"""`ray start` for an extra worker node that joins a head listening on loopback only.

Ray 2.60's CLI cannot do this as it is. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (what keeps the
local head on 127.0.0.1) also makes ``ray start --address`` refuse to start a worker node
("Multi-node Ray clusters are not supported"); with the variable at 1 the CLI rewrites the head
address ``127.0.0.1:<port>`` to this machine's external IP, where the head's GCS does not listen.
This wrapper runs the real CLI with the variable at 1 and keeps a loopback head address as given;
every other address comes from explicit flags (``--node-ip-address=127.0.0.1``), so nothing else
depends on the rewrite. Used by cluster/nodes.py as ``python -m cluster.ray_worker_node <ray start
args>``; never needed on a real cluster, whose nodes reach the head on a routable address.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"  # read once, when ray is imported

    import ray._private.services as services
    from ray.scripts.scripts import main as ray_cli

    rewrite = services.resolve_ip_for_localhost

    def keep_loopback(host: str) -> str:
        return host if host in ("127.0.0.1", "::1") else rewrite(host)

    services.resolve_ip_for_localhost = keep_loopback
    sys.argv = ["ray", "start", *argv]
    return ray_cli()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
