"""``GET /metrics`` and ``/health`` of the SCIM endpoint (runner/serve/metrics.py, app.py).

The endpoint runs as a real uvicorn process on 127.0.0.1 over a memory store
(``tests/servers/scimendpoint.py``); the scrape is read with prometheus_client's own parser and
checked with ``promtool check metrics``. A store that has ``health()`` and ``metric_families()``
is served by this file run as a script (``python test_metrics.py --port N --folder F``): its health
is what ``F/health.json`` says, and its own metrics join the scrape.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from servers.process import launch
from servers.scimendpoint import TOKEN, ScimEndpoint, free_port

REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str) -> tuple[requests.Response, Samples]:
    """``url``'s metrics, without a credential (the default: public), checked by promtool."""
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    checked = promtool(answer.text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return answer, parse(answer.text)


def promtool(text: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)


# ---- requests counted, timed, refused ---------------------------------------------------------------------


def test_requests_are_counted_by_resource_type_method_and_status(endpoint: ScimEndpoint) -> None:
    metrics = f"{endpoint.url}/metrics"
    _, before = scrape(metrics)
    user = endpoint.create_user()
    assert endpoint.request("GET", f"/Users/{user['id']}").status_code == 200
    assert endpoint.request("GET", "/Users/no-such-id").status_code == 404
    assert endpoint.request("GET", "/Groups").status_code == 200
    assert endpoint.request("GET", "/ServiceProviderConfig").status_code == 200
    assert endpoint.request("POST", "/.search", {"filter": 'userName eq "x"'}).status_code == 200
    assert endpoint.request("GET", f"/no-such-endpoint-{time.time_ns()}").status_code == 404
    assert endpoint.request("BREW", "/Users").status_code == 405  # no method a client makes up becomes a label
    assert requests.get(f"{endpoint.url}/Users", timeout=10).status_code == 401
    answer, after = scrape(f"http://127.0.0.1:{endpoint.port}/metrics")  # the same registry at the root

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests_total = "provision_serve_requests_total"
    assert grew(requests_total, resource_type="User", method="POST", status="201") == 1
    assert grew(requests_total, resource_type="User", method="GET", status="200") == 1
    assert grew(requests_total, resource_type="User", method="GET", status="404") == 1
    assert grew(requests_total, resource_type="User", method="GET", status="401") == 1
    assert grew(requests_total, resource_type="User", method="other", status="405") == 1
    assert grew(requests_total, resource_type="Group", method="GET", status="200") == 1
    assert grew(requests_total, resource_type="ServiceProviderConfig", method="GET", status="200") == 1
    assert grew(requests_total, resource_type="all", method="POST", status="200") == 1
    assert grew(requests_total, resource_type="other", method="GET", status="404") == 1
    assert grew("provision_serve_unauthorized_requests_total", reason="missing") == 1
    assert grew("provision_serve_request_duration_seconds_count", resource_type="User", method="GET") == 3
    assert grew("provision_serve_request_duration_seconds_bucket", resource_type="User", method="POST", le="+Inf") == 1
    assert value(after, "provision_serve_request_duration_seconds_sum", resource_type="User", method="POST") > 0
    # the scrape itself is the one request in progress
    assert value(after, "provision_serve_requests_in_progress", resource_type="metrics", method="GET") == 1
    assert value(after, "provision_serve_requests_in_progress", resource_type="User", method="GET") == 0
    labels = {dict(k[1]).get("resource_type") for k in after if k[0] == requests_total}
    assert labels <= {"User", "Group", "ServiceProviderConfig", "all", "other", "metrics", "health"}
    assert "no-such-endpoint" not in answer.text


def test_openmetrics_when_the_scraper_asks_for_it(endpoint: ScimEndpoint) -> None:
    answer = requests.get(f"{endpoint.url}/metrics", timeout=10,
                          headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


def test_the_rate_limits_429s_are_counted_and_scrapes_are_never_limited(tmp_path: Path) -> None:
    limited = ScimEndpoint.start(tmp_path, rate=0.5, burst=2)
    try:
        statuses = [limited.request("GET", "/Users").status_code for _ in range(6)]
        assert statuses.count(429) >= 3, statuses
        for _ in range(5):
            answer, samples = scrape(f"{limited.url}/metrics")
        assert value(samples, "provision_serve_rate_limited_requests_total") == statuses.count(429)
        assert value(samples, "provision_serve_requests_total", resource_type="User", method="GET",
                     status="429") == statuses.count(429)
    finally:
        limited.stop()


# ---- a store's own health and metrics ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve the endpoint over :func:`observed_store` (this file run as a script)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args(argv)
    from runner.serve.app import create_app
    from runner.serve.server import serve

    serve(create_app(observed_store(args.folder), token=TOKEN), "127.0.0.1", args.port, log_level="warning")


def observed_store(folder: Path) -> Any:
    """A memory store with ``health()`` (what ``folder/health.json`` says; ``"raise"`` fails) and
    ``metric_families()`` (the users held; ``folder/metrics-fail`` makes it fail)."""
    from prometheus_client.core import GaugeMetricFamily, Metric

    from runner.serve.store import MemoryStore

    class ObservedStore(MemoryStore):
        def health(self) -> dict[str, Any]:
            said = json.loads((folder / "health.json").read_text())
            if said == "raise":
                raise RuntimeError("the state store is unreachable")
            return said

        def metric_families(self) -> Iterable[Metric]:
            if (folder / "metrics-fail").exists():
                raise RuntimeError("the state store is unreachable")
            users = GaugeMetricFamily("provision_serve_store_objects", "Objects the store holds", labels=["kind"])
            users.add_metric(["User"], self.query("User", None, 1, 0).total)
            yield users

    return ObservedStore()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScimEndpoint, Path]]:
    folder = tmp_path_factory.mktemp("observed-store")
    (folder / "health.json").write_text('{"status": "ok", "state_store": "reachable"}')
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}
    process = launch([sys.executable, __file__, "--port", str(port), "--folder", str(folder)], folder,
                     folder / "server.log", env,
                     lambda: requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200,
                     "the endpoint over an observed store")
    endpoint = ScimEndpoint(port, process)
    endpoint.session.headers.update({"Authorization": f"Bearer {TOKEN}", "Accept": "application/scim+json"})
    yield endpoint, folder
    endpoint.stop()


@pytest.mark.parametrize(("said", "status", "body"), [
    ({"status": "ok", "state_store": "reachable"}, 200, {"status": "ok", "state_store": "reachable"}),
    ({"pending_exports": 3}, 200, {"status": "ok", "pending_exports": 3}),
    ({"status": "degraded", "target": "slow"}, 200, {"status": "degraded", "target": "slow"}),
    ({"status": "down", "target": "unreachable"}, 503, {"status": "down", "target": "unreachable"}),
    ("raise", 503, {"status": "down", "detail": "the store's health check failed; the log has the details"}),
], ids=["ok", "no-status-is-ok", "degraded", "down", "failing"])
def test_health_is_what_the_store_says(observed: tuple[ScimEndpoint, Path], said: Any, status: int,
                                       body: dict[str, Any]) -> None:
    endpoint, folder = observed
    (folder / "health.json").write_text(json.dumps(said))
    for url in (f"{endpoint.url}/health", f"http://127.0.0.1:{endpoint.port}/health"):
        answer = requests.get(url, timeout=10)
        assert (answer.status_code, answer.json()) == (status, body)
    (folder / "health.json").write_text('{"status": "ok"}')


def test_the_stores_own_metrics_join_the_scrape(observed: tuple[ScimEndpoint, Path]) -> None:
    endpoint, folder = observed
    _, before = scrape(f"{endpoint.url}/metrics")
    endpoint.create_user()
    endpoint.create_user()
    _, after = scrape(f"{endpoint.url}/metrics")
    held = "provision_serve_store_objects"
    assert value(after, held, kind="User") == value(before, held, kind="User") + 2
    # a store whose metrics fail: the scrape still answers, without them, and says so
    (folder / "metrics-fail").touch()
    try:
        _, failed = scrape(f"{endpoint.url}/metrics")
    finally:
        (folder / "metrics-fail").unlink()
    assert (held, (("kind", "User"),)) not in failed
    assert value(failed, "provision_serve_store_collect_failures_total") == 1
    assert value(failed, "provision_serve_requests_total", resource_type="User", method="POST", status="201") == 2
    assert "the state store is unreachable" in (folder / "server.log").read_text()


if __name__ == "__main__":
    main()
