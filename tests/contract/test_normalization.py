"""Normalizations: a value differing only by a declared normalization round-trips as the same value.

The engine compares values through the normalizations the connector declares
(``runner.engine.diff.comparer``). Whatever the system stores for a value sent in another
spelling must compare equal to it, or the engine would send it again every run.
"""

from __future__ import annotations

import pytest

from runner.engine.diff import comparer

pytestmark = pytest.mark.contract(ops="add", read=True)

# A base value in normalized form for each step, and a spelling of it that only that step undoes.
BASES = {"dn": "cn=smith,ou=people", "phone_digits": "+15550123", "remove_diacritics": "Sao Paulo"}
PERTURB = {
    "case_insensitive": str.upper,
    "trim": lambda v: f"  {v}\t",
    "collapse_spaces": lambda v: v.replace(" ", "  \t "),
    "remove_diacritics": lambda v: v.translate(str.maketrans("aeiou", "ãéîöü")),
    "phone_digits": lambda v: f"{v[:2]} ({v[2:5]}) {v[5:7]}-{v[7:]}",
    "dn": lambda v: ", ".join(r.split("=", 1)[0].upper() + "=" + r.split("=", 1)[1] for r in v.split(",")),
}


def spellings(harness, attribute: str, steps: tuple[str, ...]) -> tuple[str, str]:
    base = harness.values.get(attribute) or next((BASES[s] for s in steps if s in BASES), "Head of Sales")
    sent = base
    for step in steps:
        sent = PERTURB[step](sent)
    return base, sent


def test_a_value_in_another_spelling_compares_equal_to_what_is_stored(driver, normalization):
    declared, steps = normalization
    attribute = driver.harness.text if declared == "*" else declared
    base, sent = spellings(driver.harness, attribute, tuple(steps))
    compare = comparer(driver.caps.normalizations)
    assert sent != base and compare(attribute, sent) == compare(attribute, base), "the test's own spelling"

    anchor = driver.add(driver.sample(0, **{attribute: sent}))
    stored = driver.get(anchor).attributes.get(attribute)
    assert compare(attribute, stored) == compare(attribute, sent), (sent, stored)

    if "update" in driver.caps.operations:  # the base spelling back: still the same value
        assert driver.update(anchor, attributes={attribute: base}).ok
        stored = driver.get(anchor).attributes.get(attribute)
        assert compare(attribute, stored) == compare(attribute, sent), (base, stored)
