"""Prometheus metrics at ``/metrics``: request latency per route, websocket connections, outbox
depth and age, projection lag, deliveries by channel and outcome.

Labels are route templates, methods, status codes, channel names, statuses and projection names:
never an id, a phone number, an address or anything a customer wrote.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import psycopg
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
access = logging.getLogger("commhub.access")  # route templates only: raw paths and queries may hold ids or searches

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HubCollector(Collector):
    """Reads the cluster-wide figures from PostgreSQL at scrape time, so every API process reports
    the same outbox and projection state whichever process did the work."""

    def __init__(self, hub: Any, connections: Callable[[], dict[str, int]]) -> None:
        self.hub = hub
        self.connections = connections

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sockets = GaugeMetricFamily("commhub_websocket_connections", "Open websocket connections in this process",
                                    labels=["kind"])
        for kind, count in self.connections().items():
            sockets.add_metric([kind], count)
        yield sockets
        try:
            yield from self._from_database()
        except psycopg.Error as error:  # a scrape during a database outage still answers
            log.warning("metrics could not read the database (%s)", type(error).__name__)

    def _from_database(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(timezone.utc)
        with self.hub.database.connection() as conn:
            outbox = conn.execute(
                "SELECT channel, status, count(*) FROM commhub_outbox GROUP BY channel, status"
            ).fetchall()
            oldest = conn.execute(
                "SELECT min(created_at) FROM commhub_outbox WHERE status = 'pending'"
            ).fetchone()[0]
            positions = conn.execute("SELECT name, position, updated_at FROM commhub_projection_positions").fetchall()
        head = self.hub.app.recorder.max_notification_id() or 0
        depth = GaugeMetricFamily("commhub_outbox_depth", "Outbound messages waiting to be delivered",
                                  labels=["channel"])
        outcomes = GaugeMetricFamily("commhub_outbox_messages", "Outbound messages by channel and outcome",
                                     labels=["channel", "status"])
        for channel, status, count in outbox:
            outcomes.add_metric([channel, status], count)
            if status == "pending":
                depth.add_metric([channel], count)
        age = GaugeMetricFamily("commhub_outbox_oldest_age_seconds", "Age of the oldest undelivered message")
        age.add_metric([], (now - oldest).total_seconds() if oldest is not None else 0.0)
        lag_events = GaugeMetricFamily("commhub_projection_lag_events", "Events a projection still has to apply",
                                       labels=["projection"])
        lag_seconds = GaugeMetricFamily("commhub_projection_lag_seconds",
                                        "Seconds since a lagging projection last advanced (0 when current)",
                                        labels=["projection"])
        for name, position, updated_at in positions:
            behind = max(0, head - position)
            lag_events.add_metric([name], behind)
            lag_seconds.add_metric([name], (now - updated_at).total_seconds() if behind and updated_at else 0.0)
        yield from (depth, outcomes, age, lag_events, lag_seconds)


class Metrics:
    """The registry of one app, and the ASGI middleware that times every HTTP request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "commhub_http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route", "status"], registry=self.registry, buckets=LATENCY_BUCKETS,
        )
        self._series: dict[tuple[str, str, int], Any] = {}  # bounded: route templates, never raw paths

    def watch(self, hub: Any, connections: Callable[[], dict[str, int]]) -> None:
        self.registry.register(HubCollector(hub, connections))

    def observe(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"  # never the raw path: it may hold ids
        key = (scope.get("method", "?"), template, status)
        series = self._series.get(key)
        if series is None:  # prometheus_client's labels() takes a lock and builds the key every call
            series = self._series[key] = self.latency.labels(key[0], template, str(status))
        series.observe(seconds)


def timed(metrics: Metrics, scope: dict[str, Any], send: Any) -> tuple[Any, Callable[[], None]]:
    """Wrap ``send`` to note the status; the returned ``done`` records the request's duration."""
    started = time.perf_counter()
    status = 500

    async def noting(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    def done() -> None:
        seconds = time.perf_counter() - started
        metrics.observe(scope, status, seconds)
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        access.info("request", extra={"method": scope.get("method"), "route": route, "status": status,
                                      "ms": round(seconds * 1000, 2)})

    return noting, done
