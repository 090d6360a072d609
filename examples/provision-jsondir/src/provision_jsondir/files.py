"""Object files: the JSON document of one object, written atomically.

An object file holds::

    {"anchor": "<uuid4>", "name": "uid=jsmith,ou=people", "object": "users",
     "attributes": {...}, "password_hash": "<sha256 hex>"}

``password_hash`` is absent until a password is set. A write goes to a temporary file in the
same folder (named ``.<file>.<random>.tmp``, so a tree walk skips it), is flushed and, unless
``fsync`` is off, synced, then renamed over the object file with ``os.replace``: a reader sees
the old document or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

SUFFIX = ".json"
TEMP_SUFFIX = ".tmp"
REQUIRED = ("anchor", "name", "object", "attributes")


class DamagedFile(ValueError):
    """An object file that is not a readable object document."""


def read_doc(path: Path) -> dict[str, Any]:
    """The document in ``path``. Raises FileNotFoundError, or DamagedFile when it is not one."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or any(k not in doc for k in REQUIRED) or not isinstance(doc["attributes"], dict):
        raise DamagedFile(f"{path}: not an object document (needs {', '.join(REQUIRED)})")
    return doc


def write_doc(path: Path, doc: dict[str, Any], fsync: bool = True) -> None:
    """Write ``doc`` to ``path`` atomically, creating the folder when needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def is_temp(filename: str) -> bool:
    """A temporary file a crashed write left behind."""
    return filename.startswith(".") and filename.endswith(TEMP_SUFFIX)


def children_folder(path: Path) -> Path:
    """The folder holding the children of the object stored in ``path``."""
    return path.with_name(path.name[: -len(SUFFIX)])
