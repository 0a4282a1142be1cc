"""Ray for the data stages: join `RAY_ADDRESS` or the already running Ray, else start a local one.

On one machine the local Ray gets the machine's CPUs and a modest object store; on a cluster
the same pipelines run unchanged with `RAY_ADDRESS` set. Ray Data keeps block order so outputs
are deterministic, and its progress display follows the caller's terminal.
"""

from __future__ import annotations

import os

from components.home import Home, quiet_telemetry


def ensure_ray(num_cpus: int | None = None, object_store_mb: int = 512) -> None:
    """Initialise Ray once: honour RAY_ADDRESS, reuse a running session, else start locally."""
    import ray

    if ray.is_initialized():
        return
    quiet_telemetry()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    else:
        temp = Home.resolve().ray
        kwargs = {"_temp_dir": str(temp)} if len(str(temp)) < 60 else {}  # unix socket paths are short
        ray.init(ignore_reinit_error=True, num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=object_store_mb * 1024 * 1024, log_to_driver=False,
                 logging_level="warning", **kwargs)
    configure_data()


def configure_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True  # same input, same output files
    ctx.enable_progress_bars = os.isatty(2)
    ctx.print_on_execution_start = False
