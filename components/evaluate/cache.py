"""A cache of model results per (model fingerprint, task, sample, request) in SQLite.

The key hashes the model's fingerprint, the task name, the sample id and the full request (prompt
pieces, options, stop strings, sampling settings), so a changed prompt format or setting is a
miss, and re-running an evaluation, or a larger `--limit`, only computes what is new.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def request_key(fingerprint: str, task: str, sample_id: str, request: Any, extra: Any = None) -> str:
    payload = json.dumps([fingerprint, task, sample_id, dataclasses.asdict(request), extra], sort_keys=True,
                         ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResultCache:
    """Key -> JSON value; `path=None` disables caching."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        if self.path is None or not keys:
            return {}
        found = {}
        with self._lock, self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for key, value in db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(value)
        return found

    def put_many(self, values: dict[str, Any]) -> None:
        if self.path is None or not values:
            return
        with self._lock, self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)",
                           [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()])

    def cached(self, keys: list[str], compute: Callable[[list[int]], list[Any]], chunk: int = 256,
               progress: Callable[[int], None] | None = None) -> list[Any]:
        """Values for `keys`: from the cache, else `compute(indices)`, stored every `chunk` so a crash keeps work."""
        have = self.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in have]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if progress and len(keys) > len(todo):
            progress(len(keys) - len(todo))
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            fresh = dict(zip((keys[i] for i in part), compute(part), strict=True))
            self.put_many(fresh)
            have.update(fresh)
            if progress:
                progress(len(part))
        return [have[k] for k in keys]
