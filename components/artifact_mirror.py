"""The object-storage copy of the artifact store (`DSLLM_ARTIFACTS_URI`, see `components.storage`).

Stages read and write local directories, so the local store under `DSLLM_HOME` stays the working copy
and the remote one is the shared source of truth: a published artifact is uploaded with its manifest
last; an artifact another machine published is downloaded, fully checked against its manifest and
only then moved into place. One builder per key across machines: a lease lock object beside the
artifacts (`<uri>/artifacts/.locks/<stage>-<key>.lock`, conditional create).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from components import integrity, storage
from components.integrity import MANIFEST, STAMP

log = logging.getLogger("dsllm.artifacts")


class Mirror:
    """Artifacts under `<root>/artifacts/<stage>/<key>/` on object storage."""

    def __init__(self, root: str):
        self.root = storage.join(root, "artifacts")

    def uri(self, stage: str, key: str) -> str:
        return storage.join(self.root, stage, key)

    def lock(self, stage: str, key: str):
        return storage.lease(storage.join(self.root, ".locks", f"{stage}-{key}.lock"))

    def is_done(self, stage: str, key: str) -> bool:
        return storage.exists(storage.join(self.uri(stage, key), MANIFEST))

    def problems(self, stage: str, key: str, full: bool = False) -> list[str]:
        return integrity.remote_problems(self.uri(stage, key), full)

    def push(self, local: Path, stage: str, key: str) -> None:
        """Upload a published artifact (manifest last)."""
        storage.upload_dir(local, self.uri(stage, key), last=MANIFEST, skip=(STAMP,))

    def pull(self, stage: str, key: str, final: Path) -> bool:
        """Download the remote artifact into `final` when it is there and intact; False when it is not."""
        if not self.is_done(stage, key):
            return False
        tmp = final.with_name(f"{key}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            storage.download_dir(self.uri(stage, key), tmp)
            if found := integrity.problems(tmp, full=True):
                log.warning("%s is damaged, rebuilding it: %s", self.uri(stage, key), "; ".join(found))
                return False
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True
