"""Prefect flows: wire the stages, pass artifact URIs, log to MLflow. No ML logic here."""

import logging
import os

# Progress the components log (e.g. pretraining's step/loss/ETA on logger "dsllm.pretrain") reaches the
# Prefect UI too. Read when Prefect configures logging at import, hence set before prefect is imported.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "dsllm,components")
# Prefect gives those loggers its handlers but not a level; under its WARNING root the progress lines would drop.
for _name in ("dsllm", "components"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)
