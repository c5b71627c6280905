"""Prometheus metrics of one server, in its own registry (several apps may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_TIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The server's counters, gauges and histograms (``text()`` is the /metrics body)."""

    def __init__(self, model, in_flight) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "sealion_vl_requests", "HTTP requests answered, by status code", ["status"], registry=r
        )
        self.prompt_tokens = Counter(
            "sealion_vl_prompt_tokens", "Prompt tokens processed", registry=r
        )
        self.completion_tokens = Counter(
            "sealion_vl_completion_tokens", "Completion tokens generated", registry=r
        )
        self.ttft = Histogram(
            "sealion_vl_time_to_first_token_seconds",
            "Request arrival to first generated token",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "sealion_vl_request_latency_seconds",
            "Request arrival to last token (chat completions)",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.cancelled = Counter(
            "sealion_vl_cancelled", "Generations cancelled by a client disconnect", registry=r
        )
        waiting = Gauge("sealion_vl_queue_waiting", "Requests queued for the scheduler", registry=r)
        waiting.set_function(lambda: model.scheduler.load["waiting"])
        running = Gauge("sealion_vl_batch_running", "Requests in the running batch", registry=r)
        running.set_function(lambda: model.scheduler.load["running"])
        flight = Gauge(
            "sealion_vl_in_flight",
            "Generations admitted by the server (encoding, waiting or running)",
            registry=r,
        )
        flight.set_function(in_flight)

    def text(self) -> bytes:
        return generate_latest(self.registry)
