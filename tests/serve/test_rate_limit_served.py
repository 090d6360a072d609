"""``serve.rate_limit`` in the manifest: ``provision serve`` answers 429 with ``Retry-After`` above
it (Entra slows down and retries), and never limits ``/health`` or ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from servers.pipelineendpoint import TOKEN_ENV, PipelineEndpoint
from servers.scimendpoint import TOKEN

from .test_pipeline import pipeline_folder


def test_requests_above_the_manifests_rate_limit_are_429_with_retry_after(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    manifest = pipeline_folder(tmp_path)
    manifest.write_text(manifest.read_text().replace(
        'serve: {token: "${env:SCIM_ENDPOINT_TOKEN}"}',
        'serve: {token: "${env:SCIM_ENDPOINT_TOKEN}", rate_limit: {per_second: 0.2, burst: 3}}'))
    served = PipelineEndpoint.start_serving(manifest, tmp_path)
    try:
        answers = [served.request("GET", "/Users") for _ in range(5)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        limited = answers[3]
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["status"] == "429"
        for _ in range(5):
            assert requests.get(f"{served.url}/health", timeout=30).status_code == 200
            assert requests.get(f"{served.url}/metrics", timeout=30).status_code == 200
    finally:
        served.stop()
