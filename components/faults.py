"""Which failures a retry can fix, and disk errors that say which path and how much space is left.

A lost worker, a dropped connection or a timeout of a remote service may go away when tried again; a
full disk, a read-only or forbidden path, a missing file or a bad value comes back on every retry, so
retrying only wastes minutes and buries the cause (the stage retry policy in `flows.ops`, Ray Train's
failure policy in `components.pretrain.failures`).
"""

from __future__ import annotations

import errno
import shutil
from collections import deque
from collections.abc import Iterator
from pathlib import Path

NON_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                                  errno.ENOTDIR, errno.EISDIR, errno.EFBIG, errno.ENAMETOOLONG, errno.EMFILE})
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
MISTAKES = (ValueError, LookupError, TypeError, AssertionError, TimeoutError, NotImplementedError, FileNotFoundError)
"""Bad configs or inputs (a missing input file too, errno or not), broken invariants, a stage past its timeout: a
rerun repeats them. The one list: stage retries (`flows.ops`) and Ray Train's failure policy both use it."""


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, its causes and contexts, and the errors of failed Ray Train workers, each once."""
    seen, todo = set(), deque([error])
    while todo:
        exc = todo.popleft()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        todo += [exc.__cause__, exc.__context__, getattr(exc, "_base_exc", None)]
        todo += list((getattr(exc, "worker_failures", None) or {}).values())


def is_disk_full(error: BaseException) -> bool:
    return any((isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS)
               or any(text in str(e) for text in DISK_FULL_TEXT) for e in causes(error))


def is_deterministic(error: BaseException) -> bool:
    """True when retrying cannot help: a mistake, a damaged artifact, or an OS error such as a full disk, anywhere
    in the cause chain."""
    return any(deterministic_here(exc) for exc in causes(error))


def deterministic_here(exc: BaseException) -> bool:
    """`exc` itself, not its causes, is a mistake, a damaged artifact or a non-transient OS error."""
    from components.integrity import ArtifactDamaged

    if isinstance(exc, OSError) and exc.errno in NON_TRANSIENT_ERRNOS:
        return True
    return isinstance(exc, MISTAKES + (ArtifactDamaged,)) or any(t in str(exc) for t in DISK_FULL_TEXT)


def free_mb(path: Path) -> float:
    """Free space (MB) on the file system that holds `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 2**20


def disk_full(error: BaseException, path: Path) -> OSError:
    """An OSError that names the path being written and the space left (the original has neither)."""
    code = next((e.errno for e in causes(error) if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS),
                errno.ENOSPC)
    where = next((e.filename for e in causes(error) if isinstance(e, OSError) and e.filename), None) or path
    return OSError(code, f"No space left on device while writing {where} ({free_mb(Path(where)):.0f} MB free "
                         "there): free some space or point DSLLM_HOME at a larger disk", str(where))
