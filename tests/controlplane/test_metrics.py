"""`/metrics` over HTTP: Prometheus text with requests, latency, cold starts, failures and replica gauges."""

from __future__ import annotations

import re

import httpx
from _auth import owner


def scrape(url: str) -> dict[str, float]:
    """The samples of one scrape, by their full name with labels (`name{a="b"}`)."""
    response = httpx.get(f"{url}/metrics", headers=owner(url))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


def test_metrics_count_requests_by_service_and_status(echo_url: str) -> None:
    before = scrape(echo_url)
    for _ in range(3):
        assert httpx.post(f"{echo_url}/echo/echo", json={"text": "hi", "greeting": "yo"}).status_code == 200
    assert httpx.post(f"{echo_url}/echo/echo", json={"text": 1}).status_code == 422
    after = scrape(echo_url)

    ok = 'fnserve_requests_total{service="echo",status="200"}'
    assert after[ok] - before.get(ok, 0) == 3
    refused = 'fnserve_requests_total{service="echo",status="422"}'
    assert after[refused] - before.get(refused, 0) == 1
    count = 'fnserve_request_duration_seconds_count{service="echo"}'
    assert after[count] - before.get(count, 0) == 4
    assert after['fnserve_request_duration_seconds_bucket{service="echo",le="+Inf"}'] == after[count]
    buckets = [value for name, value in after.items() if name.startswith("fnserve_request_duration_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative


def test_metrics_report_cold_starts_and_replicas(echo_url: str) -> None:
    samples = scrape(echo_url)
    assert samples['fnserve_replica_cold_start_seconds_count{service="echo"}'] >= 1
    assert 0 < samples['fnserve_replica_cold_start_seconds_sum{service="echo"}'] < 60
    assert samples['fnserve_replicas{service="echo",version="1",state="READY"}'] == 1
    assert samples['fnserve_replicas_target{service="echo",version="1"}'] == 1
    assert samples['fnserve_requests_waiting{service="echo",version="1"}'] == 0
    assert samples['fnserve_jobs_queued{service="echo",version="1"}'] == 0
    assert any(re.match(r'fnserve_requests_in_flight\{service="echo"', name) for name in samples)


def test_metrics_need_the_owner_key(echo_url: str) -> None:
    response = httpx.get(f"{echo_url}/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
