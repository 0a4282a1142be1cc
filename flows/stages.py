"""The pipeline's stages in order: the one list the flow runs and the CLI's `--until` accepts.

No Prefect import here, so the command line can check `--until` before it configures or starts anything.
"""

from __future__ import annotations

PIPELINE_STAGES: tuple[str, ...] = ("corpus", "data", "tokenizer", "pack", "pretrain", "sft", "dpo", "evaluate",
                                    "register")
"""Every stage but the last builds an artifact; `register` registers and gates the models."""


def check_until(until: str | None) -> str | None:
    """`until` itself when it names a stage, else a ValueError listing them."""
    if until is not None and until not in PIPELINE_STAGES:
        from components.names import did_you_mean

        raise ValueError(f"--until must be one of {', '.join(PIPELINE_STAGES)}, not {until!r}."
                         f"{did_you_mean(until, PIPELINE_STAGES)}")
    return until
