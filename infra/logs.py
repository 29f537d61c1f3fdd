"""Structured logs: one JSON object per line, with the request id that caused the work.

The API takes a request's id from `X-Request-ID` (a proxy's) or makes one, answers with it,
and keeps it in a context variable for the request's logs. Every Celery message sent
meanwhile carries it as a header (`before_task_publish`), and a worker running that task
sets it again (`task_prerun`), so a request's logs and those of the tasks it caused (and
their own tasks) share one `request_id`. Work that beat starts has none.

`RIDEHAIL_LOG_FORMAT=text` gives plain lines for a terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
task_name: ContextVar[str | None] = ContextVar("task_name", default=None)

HEADER = "request_id"
# an id from outside is kept only if it looks like one (no log injection through it)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def valid_request_id(value: str | None) -> str | None:
    return value if value and _VALID_ID.match(value) else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        task = task_name.get()
        if task:
            out["task"] = task
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id.get()
        return f"{line} [request_id={rid}]" if rid else line


def configure(fmt: str = "json", level: int = logging.INFO) -> None:
    """Every log line of this process through one handler on stderr, in `fmt`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "celery", "celery.task"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # (uvicorn.access is left as the server set it: off with --no-access-log, as we run it)
    # a line per task run and per beat tick (the sweeps run every second) drowns what
    # matters; outcomes are counted in /metrics, failures still logged as errors
    for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
