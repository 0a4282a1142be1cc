"""MLflow's first-time SQLite schema creation is serialised: processes starting together on a fresh home."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # three processes importing MLflow: a minute on a busy machine

CODE = "import sys; from components.home import ensure_mlflow_schema, mlflow_client; " \
       "ensure_mlflow_schema(sys.argv[1]); print(mlflow_client(tracking_uri=sys.argv[1]).search_experiments()[0].name)"


def test_concurrent_first_use_of_a_fresh_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", CODE, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert all(out.strip().endswith("Default") for out, _ in outs)
    assert (tmp_path / "mlflow" / "mlflow.db.ready").is_file()
