"""Files as targets: ``csv``, ``jsonl`` and ``ldif`` writers, and ``jsonl`` as a source (docs/files.md).

``connector.py`` holds what the three share (configuration, snapshots at the end of a run, change
records per batch), ``image.py`` the objects in memory and what each operation does to them,
``journal.py`` how a batch is durable before its results are reported, ``atomic.py`` the
durable writes; ``csvtarget.py``, ``jsonl.py`` and ``ldif.py`` (with ``rfc2849.py``) the formats.

Nothing is imported here: the registry loads each format by its module, so a CSV source does not
pay for ``ldif.py``'s LDAP password hashing (ldap3) at every start.
"""
