"""Passwords: in the add (ExportPasswordInFirstPass) or in a set_password; never stored in clear."""

from __future__ import annotations

import pytest

from runner.connectors.base import NotFound

PASSWORD = "Contract-Secret-7f3a9!"  # distinctive: the tests look for it in every file the system wrote


def assert_nowhere(driver, anchor: str) -> None:
    assert not driver.files_containing(PASSWORD), "the password is on disk in clear"
    for record in driver.records():
        assert PASSWORD not in repr(record.attributes), "a read returns the password"


@pytest.mark.contract(ops="add", read=True, caps="password_in_first_pass")
def test_a_password_in_the_add_is_not_stored_in_clear(driver):
    anchor = driver.add(driver.sample(0), password=PASSWORD)
    assert_nowhere(driver, anchor)
    driver.assert_holds(driver.get(anchor), driver.sample(0))


@pytest.mark.contract(ops="add", caps="password_in_first_pass", needs="verify_password")
def test_a_password_in_the_add_is_kept(driver):
    anchor = driver.add(driver.sample(0), password=PASSWORD)
    assert driver.harness.verify_password(driver.made, driver.tmp_path, anchor, PASSWORD)
    assert not driver.harness.verify_password(driver.made, driver.tmp_path, anchor, "something else")


@pytest.mark.contract(ops=("add", "set_password"), read=True)
def test_set_password_after_the_add_is_not_stored_in_clear(driver):
    """What the engine sends to a connector without ExportPasswordInFirstPass: add, then set_password."""
    anchor = driver.add(driver.sample(0))
    result = driver.one("set_password", anchor=anchor, password=PASSWORD)
    assert result.ok and result.anchor == anchor, result.error
    assert_nowhere(driver, anchor)
    driver.assert_holds(driver.get(anchor), driver.sample(0))


@pytest.mark.contract(ops=("add", "set_password"), needs="verify_password")
def test_set_password_is_kept_and_a_new_one_replaces_it(driver):
    anchor = driver.add(driver.sample(0))
    assert driver.one("set_password", anchor=anchor, password="first-" + PASSWORD).ok
    assert driver.one("set_password", anchor=anchor, password=PASSWORD).ok
    assert driver.harness.verify_password(driver.made, driver.tmp_path, anchor, PASSWORD)
    assert not driver.harness.verify_password(driver.made, driver.tmp_path, anchor, "first-" + PASSWORD)


@pytest.mark.contract(ops="set_password")
def test_set_password_of_an_unknown_anchor_is_not_found(driver):
    result = driver.one("set_password", anchor="999999", password=PASSWORD)
    assert not result.ok and isinstance(result.error, NotFound)
