"""What every connector declares: capabilities, configuration schema, registration, lifecycle, discover."""

from __future__ import annotations

import jsonschema
import pytest

from runner.connectors.base import (
    EXPORT_STYLES,
    INTERFACE_VERSION,
    NORMALIZATIONS,
    OPERATION_KINDS,
    REFERENCE_FORMS,
    Capabilities,
    ConnectionFailed,
    Connector,
    ObjectError,
    ObjectInfo,
)
from runner.connectors.registry import connector_class


def assert_known_values(caps: Capabilities) -> None:
    """Every field holds a value the engine knows what to do with."""
    assert type(caps) is Capabilities
    assert isinstance(caps.operations, frozenset) and caps.operations <= set(OPERATION_KINDS)
    assert isinstance(caps.max_concurrency, int) and caps.max_concurrency >= 1
    for attribute, steps in caps.normalizations.items():
        assert isinstance(attribute, str) and isinstance(steps, tuple) and set(steps) <= set(NORMALIZATIONS)
    assert caps.export_style in EXPORT_STYLES
    assert all(isinstance(a, str) and form in REFERENCE_FORMS for a, form in caps.reference_forms.items())
    assert isinstance(caps.correlation, tuple) and all(isinstance(a, str) and a for a in caps.correlation)
    assert isinstance(caps.max_values_per_operation, int) and caps.max_values_per_operation >= 0
    for flag in ("partitions", "hierarchical", "delta_read", "full_export", "delete_add_as_replace",
                 "password_in_first_pass", "multi_valued_deltas", "generated_anchor", "versioned"):
        assert isinstance(getattr(caps, flag), bool), flag


def test_capabilities_are_a_capabilities_of_known_values(driver):
    caps = driver.connector.capabilities(driver.object)
    assert_known_values(caps)
    assert caps == driver.harness.capabilities, "the same before open (validation, provision connectors) and after"
    assert_known_values(driver.connector.capabilities(None))  # what provision connectors shows


def test_the_negotiated_capabilities_are_of_known_values_too(driver):
    """What the engine runs with once the connector is open."""
    negotiated = driver.connector.negotiate(driver.object)
    assert_known_values(negotiated)
    assert negotiated == driver.caps, "negotiate gives the same answer each time it is asked"


def test_the_configuration_satisfies_the_connectors_own_schema(driver):
    cls = type(driver.connector)
    jsonschema.Draft202012Validator.check_schema(cls.config_schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(cls.config_schema).iter_errors(dict(driver.connector.config))]
    assert errors == []
    assert driver.connector.check() == []


def test_the_connector_is_installed_under_its_type_name(harness):
    """The registry loads only connectors written for this interface version."""
    cls = type(harness.probe.connector)
    assert issubclass(cls, Connector) and cls.type_name
    assert connector_class(cls.type_name) is cls
    assert cls.interface_version == INTERFACE_VERSION


def test_close_is_safe_without_open_and_twice(harness, connect, tmp_path):
    harness.make(tmp_path).connector.close()
    driver = connect()
    driver.connector.close()
    driver.connector.close()  # and once more by the fixture


@pytest.mark.contract(can="ping")
def test_ping_passes_on_an_open_connection(driver):
    driver.connector.ping()
    driver.connector.ping()


@pytest.mark.contract(ops="add", read=True, can="ping", needs="drop_connections")
def test_after_the_server_drops_its_connections_ping_says_so_or_the_connector_goes_on(driver):
    """What a server restart does to a long run: the engine pings, reopens on ConnectionFailed, goes on."""
    anchor = driver.add(driver.sample(0))
    assert list(driver.by_anchor()) == [anchor]  # the connector holds a connection now
    driver.harness.drop_connections(driver.made, driver.server)
    try:
        driver.connector.ping()
    except ConnectionFailed:
        driver.connector.close()
        driver.connector.open()
    assert list(driver.by_anchor()) == [anchor]
    assert driver.add(driver.sample(1))


def test_discover_describes_the_objects_it_serves(driver):
    infos = list(driver.connector.discover())
    assert all(isinstance(i, ObjectInfo) for i in infos)
    names = driver.connector.object_names()
    if names is not None:
        assert {i.name for i in infos} == set(names)
        if driver.caps.partitions and driver.partition is not None:
            [info] = [i for i in infos if i.name == driver.object]
            assert driver.partition in info.partitions


# ---- every operation kind a connector lists is one it carries out -------------------------------


def _scenario(driver, kind: str):
    """One operation of ``kind`` on a fresh object, as the engine would send it."""
    attributes = driver.sample(0)
    if kind == "add":
        return driver.apply(driver.add_op(attributes))[0]
    anchor = driver.add(attributes)
    name = driver.name(attributes)
    fields = {
        "update": {"attributes": {driver.harness.text: "Updated"}},
        "rename": {"name": driver.name(attributes | {driver.harness.key: "renamed"}), "old_name": name},
        "disable": {"attributes": dict(driver.harness.disable)},
        "delete": {"name": name},
        "replace": {"name": name, "attributes": attributes | {driver.harness.text: "Replaced"}},
        "set_password": {"password": "Contract-Secret-7f3a9!"},
    }[kind]
    return driver.one(kind, anchor=anchor, **fields)


@pytest.mark.contract(ops="add")
def test_each_operation_it_lists_is_carried_out(driver, kind):
    result = _scenario(driver, kind)
    assert result.ok, f"{kind}: {type(result.error).__name__}: {result.error}"
    assert isinstance(result.anchor, str) and result.anchor


@pytest.mark.contract(ops="add")
def test_an_operation_it_does_not_list_is_refused_in_its_result(driver, refused_kind):
    """Refused as an ObjectError in the Result: never raised, never a ConnectionFailed."""
    result = _scenario(driver, refused_kind)
    assert not result.ok and isinstance(result.error, ObjectError)
