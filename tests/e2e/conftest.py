from tests.flows.conftest import prefect_server  # noqa: F401  (the same real Prefect server fixture)
