"""provision-jsondir: an example provision connector plugin keeping objects as JSON files.

Registered under the entry-point group ``provision.connectors`` as ``jsondir``.
"""

from provision_jsondir.connector import JsonDirConnector

__all__ = ["JsonDirConnector", "__version__"]
__version__ = "0.1.0"
