"""The `deploy_demo` flow: make the chat demo serve `models:/<model>@<alias>`.

Started by the `dsllm.model.alias.moved` event (a deployment trigger) and by a polling schedule
for alias moves made by hand in the MLflow UI. When the demo is down it starts it; when it runs
on this reference it asks for an immediate swap (POST /dsllm/reload; replies in flight finish on
the old model); when it runs on another reference it restarts it on this one. Then it waits
until GET /dsllm/version reports the version the alias points at now and returns that version.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from components.services import demo as demo_proc
from components.serving.config import DemoConfig
from components.serving.refs import registry_client, resolve

SWAP_TIMEOUT_S = 30.0


@flow(name="deploy_demo", log_prints=True)
def deploy_demo(model: str = "dsllm-chat", alias: str = "approved", timeout_s: float = SWAP_TIMEOUT_S,
                missing_ok: bool = False) -> str | None:
    """Serve the alias's current version in the demo (start it or hot-swap); returns the served version.

    Args:
        model: registered model name.
        alias: the alias the demo follows.
        timeout_s: how long a running demo may take to swap to the alias's version.
        missing_ok: when no version holds the alias yet, log it and return None instead of failing (the polling
            schedule uses this, so nothing fails every 5 minutes before the first approval).
    """
    logger, ref = get_run_logger(), f"models:/{model}@{alias}"
    cfg, client = DemoConfig.resolve(model=ref), registry_client()
    try:
        target = resolve(ref, client)  # fails here, clearly, when the alias does not exist
    except LookupError as exc:
        if not missing_ok:
            raise
        logger.warning("nothing to serve yet: %s", exc)
        return None
    logger.info("%s points at version %s", ref, target.version)
    state = demo_proc.served(cfg)
    if state is not None and state.get("ref") != ref:
        logger.info("the demo serves %s; restarting it on %s", state.get("ref"), ref)
        demo_proc.down(cfg=cfg)
        state = None
    if state is None:
        state = demo_proc.up(cfg=cfg)
        logger.info("demo started on %s: %s", cfg.url, state["label"])
    else:
        state = demo_proc.reload(cfg)
    state = demo_proc.wait_for(lambda s: s.get("version") == resolve(ref, client).version, cfg, timeout_s)
    logger.info("demo on %s serves %s", cfg.url, state["label"])
    return str(state["version"])
