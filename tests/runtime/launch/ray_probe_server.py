"""The leader's "server" in the Ray launcher test: what vLLM would do, minus the GPU.

Run by ``python -m kaito_runtime.launch ray`` on the leader once the cluster has formed, with
``RAY_ADDRESS`` set by the launcher. It connects to the cluster as a driver (vLLM's Ray executor
does the same), runs one task pinned to each alive node, reports where they ran as a JSON log
line (``test_server_ready``), then answers ``GET /health`` with 200 on ``HOST:PORT`` until it is
stopped (SIGTERM), as the inference server would.

Usage: ``python -m tests.runtime.launch.ray_probe_server HOST PORT``
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level="ERROR")
    alive = [node for node in ray.nodes() if node["Alive"]]

    @ray.remote(num_cpus=1)
    def where() -> str:
        return str(ray.util.get_node_ip_address())

    placed = [
        where.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote()
        for node in alive
    ]
    ran_on = sorted(ray.get(placed, timeout=120))
    server = HTTPServer((host, port), Health)
    report = {"event": "test_server_ready", "ran_on": ran_on, "nodes": len(alive)}
    print(json.dumps(report), file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        ray.shutdown()


if __name__ == "__main__":
    main()
