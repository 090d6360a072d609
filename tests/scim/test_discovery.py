"""The discovery documents read without scim2-models, against what scim2-models reads from them.

The connector reads /ServiceProviderConfig, /Schemas and /ResourceTypes by hand (runner/connectors/
scim/discovery.py: importing scim2-models cost every run 0.3 s). These tests hold it to the
library: the same attributes out of the real scim2-server's documents, of the RFC's schemas and
of the ones ``provision serve`` publishes; the shipped RFC schemas equal to what scim2-models
writes today; the same documents refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import scim2_models
from servers.scim import TOKEN

from runner.connectors.base import ConnectionFailed
from runner.connectors.scim import discovery
from runner.connectors.scim.protocol import Attr, Features


def attr_by_library(a: Any) -> Attr:
    """What the connector made of a scim2-models ``Schema.Attribute`` before discovery.py."""
    def value(v: Any, default: Any) -> Any:
        return default if v is None else getattr(v, "value", v)
    subs = {s.name.lower(): attr_by_library(s) for s in (a.sub_attributes or [])}
    return Attr(name=a.name, type=str(value(a.type, "string")), multi=bool(a.multi_valued), subs=subs,
                case_exact=value(a.case_exact, "false") in (True, "true"),
                mutability=str(value(a.mutability, "readWrite")), returned=str(value(a.returned, "default")),
                required=value(a.required, "false") in (True, "true"), uniqueness=str(value(a.uniqueness, "none")),
                description=a.description, canonical=tuple(str(c) for c in a.canonical_values or ()))


def schemas_by_library(docs: list[dict[str, Any]]) -> dict[str, dict[str, Attr]]:
    found = {}
    for doc in docs:
        schema = scim2_models.Schema.model_validate(dict(doc))
        found[str(schema.id)] = {a.name.lower(): attr_by_library(a) for a in schema.attributes or [] if a.name}
    return found


def get(url: str) -> Any:
    answer = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def test_the_shipped_rfc_schemas_are_what_scim2_models_writes():
    written = [m.to_schema().model_dump(mode="json")
               for m in (scim2_models.User, scim2_models.EnterpriseUser, scim2_models.Group)]
    assert list(discovery.rfc_schema_documents()) == written


def test_the_real_servers_documents_read_as_scim2_models_reads_them(scim):
    url = scim.tenant()
    schemas = get(f"{url}/Schemas")["Resources"]
    assert len(schemas) >= 3
    ours = discovery.parse_schemas(schemas)
    assert ours == schemas_by_library(schemas)
    user = ours["urn:ietf:params:scim:schemas:core:2.0:User"]
    assert user["username"].uniqueness == "server" and user["emails"].multi and "value" in user["emails"].subs

    types = get(f"{url}/ResourceTypes")["Resources"]
    infos = {i.name: i for i in discovery.parse_resource_types(types, ours)}
    for doc in types:
        rt = scim2_models.ResourceType.model_validate(doc)
        info = infos[str(rt.name)]
        assert (info.endpoint, info.schema) == ("/" + str(rt.endpoint).strip("/"), str(rt.schema_))
        assert info.extensions == tuple(str(e.schema_) for e in rt.schema_extensions or [])

    spc = get(f"{url}/ServiceProviderConfig")
    library = scim2_models.ServiceProviderConfig.model_validate(spc)
    features = discovery.parse_service_provider_config(spc)
    assert (features.patch, features.bulk, features.filter, features.etag, features.sort, features.change_password) \
        == (library.patch.supported, library.bulk.supported, library.filter.supported, library.etag.supported,
            library.sort.supported, library.change_password.supported)
    assert features.max_results == (library.filter.max_results or 0)


def test_the_rfc_and_served_schemas_read_alike():
    from runner.serve.schema import _resource_schemas

    for docs in (list(discovery.rfc_schema_documents()), list(_resource_schemas())):
        assert discovery.parse_schemas(docs) == schemas_by_library(docs)


def test_names_in_any_case_and_booleans_as_text_read_as_the_library_reads_them():
    doc = {"id": "urn:example:1", "Attributes": [
        {"NAME": "badge", "Type": "Integer", "multiValued": "true", "caseExact": "TRUE", "MUTABILITY": "immutable",
         "returned": "Always", "uniqueness": "GLOBAL", "required": False, "x-vendor": 1}]}
    assert discovery.parse_schemas([doc])["urn:example:1"]["badge"] == \
        Attr("badge", type="integer", multi=True, case_exact=True, mutability="immutable", returned="always",
             uniqueness="global")
    spc = {"PATCH": {"Supported": "true"}, "bulk": {"supported": True, "maxOperations": "10", "maxPayloadSize": 5}}
    assert discovery.parse_service_provider_config(spc) == \
        Features(patch=True, bulk=True, bulk_max_operations=10, bulk_max_payload=5, filter=False)


@pytest.mark.parametrize("doc", [
    [1],
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "Resources": []},
    {"name": "a JSON API that is not SCIM", "items": []},
    {"patch": True},
    {"patch": {"supported": "maybe"}},
    {"bulk": {"supported": True, "maxOperations": "many"}},
])
def test_what_is_not_a_service_provider_configuration_is_refused(doc):
    with pytest.raises(discovery.DiscoveryError):
        discovery.parse_service_provider_config(doc)


@pytest.mark.parametrize("attribute", [
    {"name": "a", "type": "weird"},
    {"name": "a", "mutability": "sometimes"},
    {"type": "string"},
    {"name": "a", "subAttributes": {"name": "b"}},
])
def test_broken_schema_attributes_are_refused(attribute):
    with pytest.raises(discovery.DiscoveryError):
        discovery.parse_schemas([{"id": "urn:example:1", "attributes": [attribute]}])


class _JsonApi(BaseHTTPRequestHandler):
    """Some other JSON API: every GET answers the same non-SCIM object."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"name": "inventory", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_url_that_is_not_scim_stops_the_connector_with_what_to_check(open_scim):
    """A /ServiceProviderConfig of the wrong kind names the document and says to check the url."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JsonApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionFailed, match=r"/ServiceProviderConfig is not a SCIM service provider "
                                                   r"configuration \(.*\): check url"):
            open_scim(url=f"http://127.0.0.1:{server.server_address[1]}/api")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_run_that_opens_a_scim_connector_does_not_import_scim2_models(scim, tmp_path):
    code = ("import sys; from runner.connectors.scim.connector import ScimConnector; "
            "from runner.connectors.base import ConnectorContext; from pathlib import Path; "
            f"c = ScimConnector({{'type': 'scim', 'url': {scim.tenant()!r}, 'auth': {{'type': 'bearer', "
            f"'token': {TOKEN!r}}}, 'objects': {{'Users': {{}}}}}}, ConnectorContext('app', Path({str(tmp_path)!r}))); "
            "c.open(); assert 'users' in c.types; c.close(); print(json.dumps('scim2_models' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) is False
