"""A throwaway OpenLDAP slapd for tests and benchmarks: :mod:`runner.demo.slapd`, the one copy of the
configuration (``provision demo ldap`` starts the same server).

``Slapd.start(folder)`` writes a cn=config into ``folder``, loads it with ``slapadd``, adds the base
entries (two suffixes by default: ``DEFAULT_SUFFIXES``), and runs ``slapd -d 0`` on 127.0.0.1 (a free
port) and on an ldapi socket inside ``folder``; ``stop()`` ends it by its PID. The overlays, TLS and
the other options are described there.

Used by the pytest fixtures in ``tests/ldap/conftest.py`` and ``tests/contract/conftest.py`` and by
``bench/ldap_export.py``. Needs Debian's ``slapd`` and ``ldap-utils`` (``scripts/test`` installs
them); a missing binary is a failure with what to install, never a skip.
"""

from __future__ import annotations

from runner.demo.slapd import (
    DEFAULT_SUFFIXES,
    MODULES,
    ROOT_PASSWORD,
    SCHEMAS,
    SLAPADD,
    SLAPD,
    Slapd,
    SlapdMissing,
    base_ldif,
    config_ldif,
    free_port,
    make_certificates,
)

__all__ = ["DEFAULT_SUFFIXES", "MODULES", "ROOT_PASSWORD", "SCHEMAS", "SLAPADD", "SLAPD", "Slapd", "SlapdMissing",
           "base_ldif", "config_ldif", "free_port", "make_certificates"]
