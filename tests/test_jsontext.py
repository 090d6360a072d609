"""The state store's JSON text is the one earlier versions wrote: row hashes stored by them are
compared with new ones, so a different text would make every object of an existing store look
changed (and recomputed) after an upgrade."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import json
import math
import random
import uuid

import pytest

from runner.actions import Action
from runner.jsontext import dumps, loads
from runner.state.base import record_hash


def stdlib(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclasses.dataclass
class Point:
    x: int


VALUES = [
    {"employee_id": "E000123", "first_name": "Zoë", "last_name": "Ångström", "preferred_name": None,
     "email": "zoe@example.org", "phone": "+1 555.123.4567", "active": True, "count": 3},
    {"members": ["E1", "E2", "E3"], "nested": {"b": [1, 2, {"z": None, "a": "x"}], "a": "\u2028\x1f\"\\/"}},
    {"big": 2**70, "negative": -(2**64), "small": 1.5e-05, "tiny": 1e-07, "large": 1e16, "plain": 2.5, "zero": -0.0},
    {"nan": math.nan, "inf": math.inf},
    {10: "integer keys sort as numbers", 2: "then become text"},
    {"when": dt.datetime(2026, 12, 7, 15, 4, 5), "day": dt.date(2026, 1, 2), "at": dt.time(3, 4),
     "money": decimal.Decimal("12.50"), "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
     "point": Point(1), "bytes": b"\x00a", "set": {"only"}},
    {"action": Action.ADD, "tuple": (1, "a"), "emoji": "👩‍💻", "empty": {}, "none": []},
    "a bare string", 42, None, [3, 1, 2],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_text_is_the_standard_librarys(value):
    assert dumps(value) == stdlib(value)


def test_random_floats_are_written_as_before():
    rng = random.Random(7)
    values = [rng.uniform(-1e6, 1e6) for _ in range(2000)] + [10 ** rng.uniform(-30, 30) for _ in range(2000)]
    assert [dumps({"v": v}) for v in values] == [stdlib({"v": v}) for v in values]


def test_a_hash_from_before_still_matches():
    record = VALUES[0]

    assert record_hash(record) == hashlib.sha1(stdlib(record).encode()).hexdigest()


@pytest.mark.parametrize("text", ['{"id":123456789012345678901234567890}', '{"v":NaN}', '["12345678901234567890"]',
                                  '{"a":1.5e-05,"b":"Zoë"}', '[9223372036854775807,-9223372036854775808]',
                                  '[18446744073709551615,18446744073709551616,-9223372036854775809]',
                                  '[1e400,-1e400]', '[0.1,0.30000000000000004,1e-320,123456789.123456789]'])
def test_reading_gives_what_the_standard_library_gives(text):
    assert json.dumps(loads(text)) == json.dumps(json.loads(text))


def test_random_numbers_read_as_the_standard_library_reads_them():
    rng = random.Random(7)
    values = [rng.choice([rng.random() * 10 ** rng.randint(-30, 30), rng.randint(-2 ** 70, 2 ** 70),
                          rng.randint(-10 ** 18, 10 ** 18)]) for _ in range(2000)]
    text = json.dumps(values)
    assert repr(loads(text)) == repr(json.loads(text))
    assert [repr(loads(json.dumps(v))) for v in values] == [repr(v) for v in values]
