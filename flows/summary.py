"""The end-of-run summary: what each stage did, what was registered, what the gate said, what the demo serves.

`RunSummary` collects, while the pipeline runs, each stage's built/reused and seconds; `finish` adds the
registered versions with the verdict and reason the gate recorded on them (`register_and_gate` returns them as
`components.registry.gate_summary` read them back from the registry, so it is what anyone else will see), what
the demo serves now and why, and where the UIs are. `table()` renders it with rich for the console, `markdown()` for the Prefect
run's artifact and log. `serving_reason` is also what `dsllm demo deploy` prints last.
No Prefect import here: the CLI uses this module before it configures Prefect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rich.table import Table

from components.home import Home, mlflow_client
from components.registry.audit import APPROVED, alias_version

CHAT = "dsllm-chat"


@dataclass
class StageRow:
    stage: str
    status: str  # built | reused | failed | done (register: not a cached artifact)
    seconds: float
    artifact: str = ""


@dataclass
class ModelRow:
    name: str
    version: str
    verdict: str  # passed | rejected | pending | "" (not gated)
    reason: str
    approved: str | None  # the version holding @approved now


@dataclass
class RunSummary:
    preset: str
    stages: list[StageRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)
    demo: str = ""
    urls: dict[str, str] = field(default_factory=dict)

    def stage(self, stage: str, cached: bool, seconds: float, artifact: str = "", status: str = "") -> None:
        self.stages.append(StageRow(stage, status or ("reused" if cached else "built"), seconds, artifact))

    def finish(self, gated: dict[str, dict], home: Home | None = None) -> RunSummary:
        """Add the registered versions ({name: its `gate_summary`, as register_and_gate returns it}), the demo and
        the UI URLs."""
        home = home or Home.resolve()
        for name, gate in gated.items():
            self.models.append(ModelRow(name, gate["version"], gate["verdict"], gate["reason"], gate["approved"]))
        self.demo = demo_line(mlflow_client(home))
        self.urls = ui_urls(home)
        return self

    def table(self) -> Table:
        table = Table(title=f"pipeline ({self.preset})", show_lines=False, title_justify="left")
        table.add_column("what", no_wrap=True)
        table.add_column("result", overflow="fold")
        table.add_column("seconds", justify="right")
        for row in self.stages:
            style = {"built": "green", "reused": "cyan", "failed": "red"}.get(row.status, "")
            status = f"[{style}]{row.status}[/{style}]" if style else row.status
            table.add_row(row.stage, f"{status} {row.artifact}", f"{row.seconds:.1f}")
        if self.stages:
            table.add_row("[bold]total[/bold]", "", f"{sum(r.seconds for r in self.stages):.1f}", end_section=True)
        for m in self.models:
            table.add_row(f"{m.name} v{m.version}", _model_text(m, rich=True), "")
        if self.models:
            table.add_row("demo", self.demo, "", end_section=True)
        for name, url in self.urls.items():
            table.add_row(name, url, "")
        return table

    def markdown(self) -> str:
        lines = [f"## pipeline ({self.preset})", "", "| what | result | seconds |", "|---|---|---|"]
        lines += [f"| {r.stage} | {r.status} {r.artifact} | {r.seconds:.1f} |" for r in self.stages]
        lines += [f"| {m.name} v{m.version} | {_model_text(m, rich=False)} | |" for m in self.models]
        lines += [f"| demo | {self.demo} | |"] if self.models else []
        lines += [f"| {name} | {url} | |" for name, url in self.urls.items()]
        return "\n".join(lines) + "\n"


def _model_text(m: ModelRow, rich: bool) -> str:
    verdict = m.verdict or "not gated"
    if rich:
        style = {"passed": "green", "rejected": "red"}.get(m.verdict, "yellow")
        verdict = f"[{style}]{verdict}[/{style}]"
    held = f"@{APPROVED} → v{m.approved}" if m.approved else f"no @{APPROVED} version"
    return f"gate {verdict}: {m.reason or '-'} ({held})"


def serving_reason(mc, name: str = CHAT, served: str | None = None) -> str:
    """Which version `models:/name@approved` serves and why, e.g. "v1: v2 was rejected by the gate: <reason>"."""
    served = served or alias_version(mc, name, APPROVED)
    versions = sorted((v for v in mc.search_model_versions(f"name = '{name}'")), key=lambda v: int(v.version))
    if not versions:
        return f"nothing: no version of {name} is registered yet"
    newer = [v for v in versions if served is None or int(v.version) > int(served)]
    why = "; ".join(_why_not(v) for v in reversed(newer))
    if served is None:
        return f"nothing: no version of {name} is approved ({why})"
    if not newer:
        reason = mc.get_model_version(name, served).tags.get("dsllm.gate.reason", "")
        return f"v{served}: the newest version, approved{f' ({reason})' if reason else ''}"
    return f"v{served}: {why}"


def _why_not(mv) -> str:
    verdict, reason = mv.tags.get("dsllm.gate", ""), mv.tags.get("dsllm.gate.reason", "")
    if verdict == "rejected":
        return f"v{mv.version} was rejected by the gate: {reason or 'no reason recorded'}"
    if verdict == "passed":
        return f"v{mv.version} passed the gate but @{APPROVED} was moved back (`dsllm models ls` shows the history)"
    return f"v{mv.version} has not been gated yet ({verdict or 'no verdict'})"


def demo_line(mc, name: str = CHAT) -> str:
    """What the demo serves now (when it runs) and why; else what `dsllm demo deploy` would serve."""
    from components.services import demo as demo_proc
    from components.serving.config import DemoConfig

    cfg = DemoConfig.resolve()
    state = demo_proc.served(cfg, timeout=2.0)
    if state is None:
        return f"not running on {cfg.url}; `dsllm demo deploy` serves {serving_reason(mc, name)}"
    version = str(state.get("version") or "") or None
    approved = alias_version(mc, name, APPROVED)
    if approved and version != approved:  # the demo follows @approved on its next check (`--poll-s`)
        return (f"serving {state.get('label', '?')} at {cfg.url} until its next check loads v{approved}: "
                f"{serving_reason(mc, name, approved)}")
    return f"serving {state.get('label', '?')} at {cfg.url}: {serving_reason(mc, name, version)}"


def ui_urls(home: Home) -> dict[str, str]:
    """Where to look: the Prefect and MLflow UIs when the services run, else how to open them."""
    from components.serving.config import DemoConfig

    prefect = os.environ.get("PREFECT_API_URL", "")
    mlflow = home.mlflow_uri
    return {"Prefect UI": prefect.removesuffix("/api") if prefect else
            "none kept (this run used a temporary server); `dsllm up` starts one",
            "MLflow UI": mlflow if mlflow.startswith("http") else f"`mlflow ui --backend-store-uri {mlflow}`",
            "demo UI": DemoConfig.resolve().url}


LAST: RunSummary | None = None
"""The summary of the last pipeline run in this process (the CLI prints it)."""
PRINTED_BY_CALLER = False
"""Set by the CLI, which prints the table itself: the flow then logs only where the summary is, not all of it."""
