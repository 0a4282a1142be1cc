"""Join or start Ray, the same way for every stage.

`RAY_ADDRESS` (a cluster, or the Ray that `dsllm up` started) wins; a running session is reused;
otherwise a local Ray starts with its temp dir under the home, so every stage on one machine shares
one layout and a cluster needs no code change.
"""

from __future__ import annotations

import os

from components.home import Home, quiet_telemetry

SOCKET_PATH_LIMIT = 60  # Ray's unix sockets live under its temp dir; long paths break them (108 bytes)


def ensure_ray(num_cpus: int | None = None, object_store_mb: int = 512, log_to_driver: bool = False) -> None:
    """Initialise Ray once: honour RAY_ADDRESS, reuse a running session, else start locally."""
    import ray

    if ray.is_initialized():
        return
    quiet_telemetry()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=log_to_driver)
        return
    temp = Home.resolve().ray
    extra = {"_temp_dir": str(temp)} if len(str(temp)) < SOCKET_PATH_LIMIT else {}
    # address="local": never the cluster named in <temp>/ray_current_cluster, which `dsllm up` leaves behind
    # in the home after `dsllm down` (ray.init would try to join that dead cluster)
    ray.init(address="local", ignore_reinit_error=True, num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
             object_store_memory=object_store_mb * 1024 * 1024, log_to_driver=log_to_driver,
             logging_level="warning", **extra)
