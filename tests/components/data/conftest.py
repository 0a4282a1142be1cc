"""A small local Ray for the data-stage integration tests (2 CPUs, small object store), shut down after."""

import pytest


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from components.data.raykit import configure_data

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False,
                 logging_level="warning")
    configure_data()
    yield ray
    if started:
        ray.shutdown()
