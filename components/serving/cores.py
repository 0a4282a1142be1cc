"""The decoding engine and the web server on separate cores (Linux; elsewhere nothing is pinned).

Why: on a CPU the engine process decodes with `threads` torch threads while the web server's threads
(Gradio's queue, preprocessing, streaming) wake hundreds of times a second under load. Left to the
scheduler, they preempt the engine and move it between cores, and its decode steps ran slower than in
a quiet process. With the engine on the last `threads` cores this process may use and the server on
the others, the engine has its cores to itself (vLLM's CPU backend binds its threads to cores for the
same reason). Where there are no more cores than engine threads, nothing is pinned.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CoreSplit:
    engine: frozenset[int]
    server: frozenset[int]


def usable_cores() -> list[int]:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def split_cores(engine_threads: int) -> CoreSplit | None:
    """The last `engine_threads` usable cores for the engine, the rest for the server; None where the OS cannot
    pin threads or no core would be left for the server."""
    cores = usable_cores()
    if not hasattr(os, "sched_setaffinity") or engine_threads < 1 or len(cores) <= engine_threads:
        return None
    return CoreSplit(frozenset(cores[-engine_threads:]), frozenset(cores[:-engine_threads]))


def pin_process(cores: frozenset[int]) -> None:
    """Every thread of this process onto `cores`: a thread's affinity is its own, and new threads inherit
    their creator's, so threads started earlier (a web server's, a thread pool's) are pinned one by one."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cores)
