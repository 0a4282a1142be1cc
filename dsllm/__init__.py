"""dsllm: the command line and local services around the components and flows."""

import os

# See flows/__init__.py: component loggers forwarded to Prefect; worker processes inherit it from `dsllm up`.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "dsllm,components")
