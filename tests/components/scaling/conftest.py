from tests.components.scaling.fixtures import ray_two_cpus, tiny_artifacts  # noqa: F401
