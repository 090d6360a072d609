"""scim2-tester, an independent SCIM conformance suite (PyPI ``scim2-tester``), against the live endpoint.

It discovers the endpoint through ``/ServiceProviderConfig``, ``/ResourceTypes`` and ``/Schemas``
(and checks them: every discovery endpoint answers GET, refuses POST/PUT/PATCH/DELETE with 405,
answers an unknown id with a 404 SCIM error), then, for ``User`` and ``Group``, creates, reads,
lists, searches (``POST /.search``), reads with ``attributes``/``excludedAttributes``, replaces
and deletes resources, and PATCHes every writable attribute with ``add``, ``replace`` and
``remove``, comparing what comes back with what it sent.

Every check passes: :data:`EXCEPTIONS` is empty, and the test fails on any check that is not a
pass, skipped ones included. Were one ever allowed, it would be listed in :data:`EXCEPTIONS` with
the RFC's words for why, here in this docstring.

Choices of the endpoint that the suite accepts, for the record (each is the RFC's, not a waiver):

* PATCH of a Group answers 204 without a body: RFC 7644 §3.5.2, "the server either MUST return a
  200 OK response code and the entire resource within the response body ... or MAY return HTTP
  status code 204 (No Content)"; the suite then reads the group back.
* Filters are limited to ``eq`` joined by ``and``; the suite sends none richer. RFC 7644 §3.4.2.2
  lets a provider refuse what it does not support: 400 ``invalidFilter``, "the specified filter
  syntax was invalid ... or the specified attribute and filter comparison combination is not
  supported".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server
from servers.scimendpoint import ScimEndpoint

#: (resource type or None, check title) -> why the RFC allows it; empty: every check passes
EXCEPTIONS: dict[tuple[str | None, str], str] = {}

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[CheckResult]]:
    """Every check, run once against an endpoint of its own (its listings then hold only what
    the suite created)."""
    endpoint = ScimEndpoint.start(tmp_path_factory.mktemp("scim2-tester"))
    try:
        with Client(base_url=endpoint.url, headers={"Authorization": f"Bearer {endpoint.token}"}, timeout=30) as http:
            yield check_server(SyncSCIMClient(http))
    finally:
        endpoint.stop()


def test_every_scim2_tester_check_passes(results: list[CheckResult]) -> None:
    print("scim2-tester:", dict(Counter(r.status.name for r in results)))
    failing = [r for r in results if r.status not in PASSING and (r.resource_type, r.title) not in EXCEPTIONS]
    assert not failing, "\n".join(f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in failing)
    unused = set(EXCEPTIONS) - {(r.resource_type, r.title) for r in results if r.status not in PASSING}
    assert not unused, f"exceptions no longer needed: {unused}"


def test_the_suite_checked_everything_it_knows(results: list[CheckResult]) -> None:
    """A suite that checked nothing would pass the test above: it must have run each part."""
    titles = {(r.resource_type, r.title) for r in results}
    for kind in ("User", "Group"):
        for check in ("object_creation", "object_query", "object_query_without_id", "object_query_with_attributes",
                      "object_list_with_attributes", "search_with_attributes", "object_replacement",
                      "object_deletion", "check_add_attribute", "check_remove_attribute", "check_replace_attribute"):
            assert (kind, check) in titles, (kind, check)
    for check in ("service_provider_config_endpoint", "query_all_resource_types", "query_all_schemas",
                  "access_invalid_schema", "access_invalid_resource_type", "random_url"):
        assert (None, check) in titles, check
    patched = Counter(r.resource_type for r in results if r.title and r.title.startswith("check_"))
    assert patched["User"] >= 60 and patched["Group"] >= 6, patched  # one check per attribute and operation
