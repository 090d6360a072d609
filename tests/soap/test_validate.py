"""What validation says about a soap connector's block: operations and arguments the WSDL lacks
(before anything runs when the WSDL is a file, at open when it is a URL), templates naming
attributes no mapping produces."""

from __future__ import annotations

import pytest
import requests
from servers.soapservice import PASSWORD, USER

from .world import hr_manifest


@pytest.fixture
def example(tmp_path, monkeypatch, soapservice):
    manifest = hr_manifest(tmp_path, people=10, groups=1)
    (manifest.parent / "usermgmt.wsdl").write_bytes(requests.get(soapservice.wsdl, timeout=10).content)
    monkeypatch.chdir(manifest.parent)  # a relative path in a variable is from the working directory
    monkeypatch.setenv("SOAP_WSDL", "usermgmt.wsdl")  # a file there (beside the manifest)
    monkeypatch.setenv("SOAP_USER", USER)
    monkeypatch.setenv("SOAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("PROVISION_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "manifests" / "data"))
    return manifest


def edit(manifest, old: str, new: str) -> None:
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new, 1))


def test_the_example_validates_against_a_wsdl_file(provision, example):
    assert provision("validate", example).code == 0


def test_an_operation_or_argument_the_wsdl_lacks_is_named_before_anything_runs(provision, example):
    edit(example, "delete: {operation: deleteUser,", "delete: {operation: removeUser,")
    edit(example, "disable: {operation: setUserActive, args: {userName: \"{id}\", active: false}}",
         "disable: {operation: setUserActive, args: {login: \"{id}\", active: false}}")
    result = provision("validate", example)
    assert result.code == 2
    assert "objects.users.delete.operation: the WSDL has no operation 'removeUser'; it has: addGroupMember" \
        in result.err, result.err
    assert "objects.users.disable.args: setUserActive takes no argument 'login'; it takes: userName, active" \
        in result.err


def test_a_wsdl_url_is_checked_when_the_run_opens_it(provision, example, soapservice, monkeypatch):
    monkeypatch.setenv("SOAP_WSDL", soapservice.wsdl)
    edit(example, "list: {operation: listGroups}", "list: {operation: listAllGroups}")
    run = provision("run", example)
    assert run.code != 0 and "the WSDL has no operation 'listAllGroups'" in run.err, run.err
    assert "Traceback" not in run.err
    assert [c["operation"] for c in soapservice.calls()] == [], "nothing was called"


def test_a_template_naming_an_attribute_no_mapping_produces_is_rejected(provision, example):
    edit(example, 'email: "{email}", active: "{active}"}}\n        update:',
         'email: "{mail}", active: "{active}"}}\n        update:')
    result = provision("validate", example)
    assert result.code == 2 and "objects.users.create.args: the template names {mail}" in result.err
    assert "did you mean {email}?" in result.err


def test_a_missing_wsdl_file_is_named(provision, example, monkeypatch):
    monkeypatch.setenv("SOAP_WSDL", "nowhere.wsdl")
    result = provision("validate", example)
    assert result.code == 2 and "connectors.svc.wsdl: no WSDL file at" in result.err
