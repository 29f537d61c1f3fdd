"""Every Prometheus family the service exports, defined once, and the scrape.

Several API processes and Celery workers (prefork children included) each count in
their own process. With `PROMETHEUS_MULTIPROC_DIR` set (as `ridehail run` does, and as
production must: one empty directory shared by the API processes and workers of a host,
wiped at start), prometheus-client keeps each process's figures in files there and a
scrape adds them up. `ridehail metrics` (one per host, started by `ridehail run`) serves
it on an internal address (`RIDEHAIL_METRICS_HOST`:`RIDEHAIL_METRICS_PORT`); the public
API does not. Without the directory, a process reports its own.

What is counted where:
- HTTP requests and latency by route: `api.middleware.Edge`.
- Pings accepted and rejected by reason: the location routes.
- SSE clients connected (a live sum over processes) and streams opened: the stream routes.
- Dispatch time from request to first offer: the dispatch worker.
- Tasks sent (`infra.queue`), and their outcomes and retries: Celery's signals.
- Pushes by outcome: the delivery worker.
- Webhook lag (Stripe's event time to our processing): the reconcile worker.
- Repairs by sweep: the beat sweeps.
- Queue depths and payments by status: read at scrape time (`scrape_extras`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from infra.routing import Queue

log = logging.getLogger("ridehail.metrics")

HTTP_REQUESTS = Counter(
    "ridehail_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "ridehail_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PINGS = Counter(
    "ridehail_pings_total",
    "Location fixes received, by outcome (accepted, rejected, duplicate) and reason",
    ["outcome", "reason"],
)
SSE_CLIENTS = Gauge(
    "ridehail_sse_clients",
    "Server-Sent Events streams open, by stream kind",
    ["stream"],
    multiprocess_mode="livesum",
)
SSE_CONNECTIONS = Counter(
    "ridehail_sse_connections_total",
    "Server-Sent Events streams opened, by stream kind",
    ["stream"],
)
DISPATCH_FIRST_OFFER = Histogram(
    "ridehail_dispatch_first_offer_seconds",
    "From a ride's request to its first offer to a driver",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASKS_SENT = Counter(
    "ridehail_tasks_sent_total", "Celery messages sent, by task (what fills the queues)", ["task"]
)
TASKS = Counter(
    "ridehail_tasks_total",
    "Celery task runs by outcome (success, retry, failure)",
    ["task", "outcome"],
)
PUSHES = Counter(
    "ridehail_pushes_total",
    "Push messages to devices by FCM outcome (sent, gone: token removed, retry, failed)",
    ["outcome"],
)
WEBHOOK_LAG = Histogram(
    "ridehail_webhook_lag_seconds",
    "From a Stripe event's creation to its processing here",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
REPAIRS = Counter(
    "ridehail_repairs_total",
    "What the beat sweeps repaired, by sweep and action",
    ["sweep", "action"],
)

QUEUES = tuple(q.value for q in Queue)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_exited(pid: int) -> None:
    """A process is gone: its live gauges (SSE clients) stop counting."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


class _Extras(Collector):
    """Figures read at scrape time from where they live (Redis, the database)."""

    def __init__(self, readers: Iterable[Callable[[], Iterator[GaugeMetricFamily]]]) -> None:
        self.readers = list(readers)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for read in self.readers:
            try:
                yield from read()
            except Exception as exc:  # a scrape must answer even when a source is down
                log.warning("metrics: %s failed: %r", getattr(read, "__name__", read), exc)


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each Celery queue (the Redis transport keeps a queue as a list)."""
    from infra.redis import get_broker_redis

    pipe = get_broker_redis().pipeline()
    for queue in QUEUES:
        pipe.llen(queue)
    return {queue: int(n) for queue, n in zip(QUEUES, pipe.execute(), strict=True)}


def queue_depths() -> Iterator[GaugeMetricFamily]:
    family = GaugeMetricFamily(
        "ridehail_queue_depth", "Celery messages waiting, by queue", labels=["queue"]
    )
    for queue, depth in queue_lengths().items():
        family.add_metric([queue], float(depth))
    yield family


def payments_by_status() -> Iterator[GaugeMetricFamily]:
    from sqlalchemy import func, select
    from sqlmodel import col

    from infra.db import session_scope
    from infra.models import Payment

    family = GaugeMetricFamily(
        "ridehail_payments", "Payments by kind and status", labels=["kind", "status"]
    )
    with session_scope() as session:
        rows = session.execute(
            select(col(Payment.kind), col(Payment.status), func.count()).group_by(
                col(Payment.kind), col(Payment.status)
            )
        ).all()
    for kind, status, count in rows:
        family.add_metric([kind, status], float(count))
    yield family


def serve(host: str, port: int) -> None:
    """`GET /metrics` on `host:port` until stopped: the scrape of every process of the
    host. Anything else is a 404."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body, content_type = scrape()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("metrics: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def scrape() -> tuple[bytes, str]:
    """The exposition of every family (every process's, in multi-process mode) plus the
    figures read at scrape time, and its content type."""
    extras = CollectorRegistry()
    extras.register(_Extras([queue_depths, payments_by_status]))
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    return own + generate_latest(extras), CONTENT_TYPE_LATEST
