"""Errors for people: an expected failure prints one short paragraph and exits 2, the traceback goes to a log.

Expected failures are the ones a user can act on: a bad config (values, YAML syntax or encoding), missing
data or artifacts, a damaged artifact, a full disk or another non-transient OS error, a run that asks for
resources the machine lacks, a service that cannot be reached. Anything else is a bug: it exits 1, also
with the log's path. While a pipeline runs, Prefect's console handler shows failures without their
tracebacks (those go to the same log file).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

import yaml

from components.faults import causes, deterministic_here

EXIT_EXPECTED = 2
_log_path: Path | None = None


def log_path() -> Path:
    """This process's log file, `<home>/logs/dsllm-<time>-<pid>.log` (created on first use)."""
    global _log_path
    if _log_path is None:
        from components.home import Home

        _log_path = Home.resolve().logs / f"dsllm-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    return _log_path


def write_log(text: str) -> Path:
    path = log_path()
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return path


def _expected_here(exc: BaseException) -> bool:
    from components.integrity import ArtifactDamaged

    if isinstance(exc, yaml.YAMLError | UnicodeDecodeError | ArtifactDamaged | ConnectionError):
        return True
    if type(exc).__name__ in ("ServiceError", "ConnectError", "ConnectTimeout"):
        return True
    return not isinstance(exc, RuntimeError) and deterministic_here(exc)  # this one, not its causes: linear


def is_expected(error: BaseException) -> bool:
    """A failure the user can fix (see the module docstring), anywhere in the cause chain."""
    return any(_expected_here(exc) or deterministic_here(exc) for exc in causes(error))


def summary(error: BaseException, limit: int = 1200) -> str:
    """The error's own message (the first expected one in the cause chain), without tracebacks, at most
    `limit` characters."""
    chosen = next((exc for exc in causes(error) if _expected_here(exc)), error)
    text = str(chosen).strip() or type(chosen).__name__
    if "Traceback (most recent call last)" in text:
        text = text.split("Traceback (most recent call last)")[0].strip() or type(chosen).__name__
    return text if len(text) <= limit else text[:limit] + " …"


def report(error: BaseException) -> int:
    """Log the traceback, print one paragraph to stderr; returns the exit code."""
    where = write_log("".join(traceback.format_exception(error)))
    if is_expected(error):
        print(f"error: {summary(error)}\n(details: {where})", file=sys.stderr)
        return EXIT_EXPECTED
    print(f"dsllm failed unexpectedly: {type(error).__name__}: {summary(error)}\nfull traceback: {where}",
          file=sys.stderr)
    return 1


def run(app) -> None:
    """Run the typer `app` as the `dsllm` command, turning exceptions into a paragraph and an exit code."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        sys.exit(report(exc))


class _ShortFormatter(logging.Formatter):
    """Formats a console record without its traceback (first line only); the full record goes to the log file."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno < logging.ERROR or not (record.exc_info or "\n" in message):
            return self.inner.format(record)
        write_log(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s").format(record))
        short = logging.makeLogRecord({**record.__dict__, "msg": f"{message.split(chr(10), 1)[0]} "
                                       f"(traceback in {log_path()})", "args": None, "exc_info": None,
                                       "exc_text": None, "stack_info": None})
        return self.inner.format(short)


def short_tracebacks_on_console() -> None:
    """Show failures on the console of Prefect's loggers without tracebacks (call after prefect is imported)."""
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):  # Prefect puts its console on the root
        for handler in logging.getLogger(name).handlers:
            if type(handler).__name__ in ("PrefectConsoleHandler", "StreamHandler") \
                    and not isinstance(handler.formatter, _ShortFormatter):
                handler.setFormatter(_ShortFormatter(handler.formatter))
