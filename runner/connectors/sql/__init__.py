"""The sql connector (SQLAlchemy): table and query mode, child tables, custom statements, delta reads.

``connector.py`` is the facade; ``bound.py`` binds each configured object to the catalogue,
``read.py`` and ``write.py`` do the work, ``delta.py`` keeps the watermark logic, ``keys.py`` the
anchors, ``catalog.py`` answers ``discover``/``server_info``, ``errors.py`` maps database errors.
"""

from runner.connectors.sql.connector import SqlConnector
from runner.connectors.sql.keys import plain

__all__ = ["SqlConnector", "plain"]
