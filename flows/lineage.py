"""Lineage on the Prefect run: a link to each stage's MLflow run and a table of its artifact keys.

Per stage, two Prefect artifacts (Artifacts tab of the flow run, and the Artifacts page by key):
- a link artifact `dsllm-<stage>-mlflow` to the stage's MLflow run: the MLflow UI page when the tracking
  URI is a server (`dsllm up`), else `runs:/<run id>` with the tracking store named in the text;
- a markdown artifact `dsllm-<stage>-lineage`: the artifact URI and key, cached or built, its inputs.
The pipeline adds one table of every stage (`dsllm-pipeline-lineage`). A failure to write them is
logged and ignored: lineage must never fail a finished stage.
"""

from __future__ import annotations

import mlflow
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from components.artifacts import StageResult


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes only)."""
    text = "-".join(("dsllm", *parts)).lower()
    return "".join(c if c.isalnum() else "-" for c in text)


def mlflow_run_link(run_id: str) -> tuple[str, str]:
    """(link, text) for an MLflow run: its UI page on a tracking server, else `runs:/<id>`."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        experiment = mlflow.get_run(run_id).info.experiment_id
        return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}", f"MLflow run {run_id}"
    return f"runs:/{run_id}", f"MLflow run {run_id} (store {uri}; `mlflow ui --backend-store-uri {uri}`)"


def stage_table(result: StageResult, inputs: dict[str, str], run_id: str) -> str:
    """The markdown lineage table of one stage."""
    rows = [("stage", result.stage), ("artifact", f"`{result.uri}`"), ("key", f"`{result.key}`"),
            ("cached", "yes" if result.cached else "no (built in this run)"), ("path", f"`{result.path}`"),
            ("MLflow run", f"`{run_id}`")]
    rows += [(f"input `{name}`", f"`{uri}`") for name, uri in sorted(inputs.items())]
    return "\n".join([f"# {result.stage}", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"


def record_stage(result: StageResult, inputs: dict[str, str], run_id: str) -> None:
    """The MLflow link and the lineage table of one finished stage, as artifacts of the current flow run."""
    try:
        link, text = mlflow_run_link(run_id)
        create_link_artifact(link, link_text=text, key=artifact_key(result.stage, "mlflow"),
                             description=f"MLflow run of stage {result.stage} ({result.uri})")
        create_markdown_artifact(stage_table(result, inputs, run_id), key=artifact_key(result.stage, "lineage"),
                                 description=f"Artifact keys of stage {result.stage}")
    except Exception as exc:  # lineage is for people; never fail a built stage over it
        get_run_logger().warning("could not record lineage artifacts for %s: %s", result.stage, exc)


def record_pipeline(flow: str, title: str, uris: dict[str, str], run_id: str) -> None:
    """One table (key `dsllm-<flow>-lineage`) of every stage's artifact URI and key, linked to the MLflow run."""
    try:
        link, text = mlflow_run_link(run_id)
        rows = [f"| {stage} | `{uri}` | `{uri.rsplit('/', 1)[-1]}` |" for stage, uri in uris.items()]
        body = "\n".join([f"# {title}", "", f"MLflow: [{text}]({link})", "", "| stage | artifact | key |",
                          "|---|---|---|", *rows]) + "\n"
        create_markdown_artifact(body, key=artifact_key(flow, "lineage"), description=f"Artifact keys of {title}")
    except Exception as exc:
        get_run_logger().warning("could not record the lineage table of %s: %s", title, exc)

