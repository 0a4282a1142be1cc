"""A trivial stage used to test the orchestration around stages (not a pipeline stage)."""

from components.artifacts import StageSpec
from components.config import StageConfig


class Demo(StageConfig):
    """n: the value added to the upstream one."""

    n: int


CALLS: list[Demo] = []


def _work(cfg: Demo, inputs, out):
    CALLS.append(cfg)
    (out / "report").mkdir()
    (out / "report" / "summary.md").write_text(f"# demo\n\nn = {cfg.n}\n")
    upstream = int((inputs["up"] / "value.txt").read_text()) if "up" in inputs else 0
    (out / "value.txt").write_text(str(upstream + cfg.n))
    return {"value": upstream + cfg.n, "nested": {"docs": 3}}


STAGE = StageSpec("demo", 1, _work, config=Demo)
