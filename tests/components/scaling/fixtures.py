"""The tiny preset's corpus → pack, built once per test session in the shared cache home (as the flows build
them, so a flow run finds them cached), and fresh homes that link to them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.artifacts import ArtifactStore, parse_uri
from components.home import Home
from components.presets import load_config
from flows.stages import PIPELINE, PIPELINE_STAGES, spec

# stage → (module, config section, inputs), in pipeline order
UNTIL_PACK = PIPELINE[:PIPELINE_STAGES.index("pack") + 1]  # corpus, data, tokenizer, pack


class use_home:
    """Point DSLLM_HOME at `root` inside a with-block (session fixtures cannot use monkeypatch)."""

    def __init__(self, root: Path):
        self.root, self.old = root, None

    def __enter__(self) -> Home:
        self.old = os.environ.get("DSLLM_HOME")
        os.environ["DSLLM_HOME"] = str(self.root)
        return Home.resolve()

    def __exit__(self, *exc) -> None:
        os.environ.pop("DSLLM_HOME") if self.old is None else os.environ.__setitem__("DSLLM_HOME", self.old)


@pytest.fixture(scope="session")
def ray_two_cpus():
    import ray

    from components.data.raykit import configure_data

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 ** 2, log_to_driver=False,
                 logging_level="warning")
    configure_data()
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_artifacts(shared_cache_home, ray_two_cpus) -> dict[str, str]:
    """{stage: uri} of the tiny preset's corpus, data, tokenizer and pack in the shared cache home."""
    cfg, uris = load_config("tiny"), {}
    with use_home(shared_cache_home.root) as home:
        store = ArtifactStore(home)
        for step in UNTIL_PACK:
            uris[step.stage] = spec(step.stage).run(step.config(cfg), step.input_uris(uris), store).uri
    return uris


def linked_home(root: Path, shared: Home, uris: dict[str, str]) -> Home:
    """A fresh home whose artifacts/ links to the shared artifacts (read-only use)."""
    home = Home.resolve(root)
    for uri in uris.values():
        stage, key = parse_uri(uri)
        (home.artifacts / stage).mkdir(parents=True, exist_ok=True)
        (home.artifacts / stage / key).symlink_to(shared.artifacts / stage / key, target_is_directory=True)
    return home
