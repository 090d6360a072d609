"""Files as targets: ``csv``, ``jsonl`` and ``ldif`` writers, and ``jsonl`` as a source (docs/files.md).

``connector.py`` holds what the three share (configuration, snapshots at the end of a run, change
records per batch), ``image.py`` the objects in memory and what each operation does to them,
``journal.py`` how a batch is durable before its results are reported, ``atomic.py`` the
durable writes; ``csvtarget.py``, ``jsonl.py`` and ``ldif.py`` (with ``rfc2849.py``) the formats.
"""

from runner.connectors.files.csvtarget import CsvConnector
from runner.connectors.files.jsonl import JsonlConnector
from runner.connectors.files.ldif import LdifConnector

__all__ = ["CsvConnector", "JsonlConnector", "LdifConnector"]
