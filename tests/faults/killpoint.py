"""Run ``provision`` with a fault injected after the target's Nth commit (tests only).

    python tests/faults/killpoint.py N SIGNAL provision-args...

Counts the target's commits: each transaction the sql connector commits (``_apply_batch``),
each object file the jsondir connector writes, each operation a SCIM server, a REST API or a SOAP service confirmed and each
LDAP operation (add, modify, modDN, delete) the directory answered. Right after commit N it sends itself SIGNAL
(KILL, TERM or INT), with ``TIMELIMIT`` makes the run's ``--time-limit`` pass, or with ``TAKEOVER`` steals the pipeline's lock in the state store, as a
run would that decided this one was dead. N = 0 injects nothing and prints ``commits: K`` on
stderr at exit, so a test can spread its kill points over a whole run.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys

from runner import cli

commits = 0


def main(argv: list[str]) -> int:
    point, what, args = int(argv[0]), argv[1], argv[2:]

    def after_commit() -> None:
        global commits
        commits += 1
        if commits != point:
            return
        if what == "TAKEOVER":
            _steal_lock(args)
        elif what == "TIMELIMIT":
            for flag in flags:  # the run's --time-limit passes now
                flag.deadline = 0.0
        else:
            os.kill(os.getpid(), getattr(signal, f"SIG{what}"))

    flags = _capture_stop_flags()
    _patch_when_loaded({
        "runner.connectors.sql": lambda: _patch_sql(after_commit),
        "provision_jsondir.files": lambda: _patch_jsondir(after_commit),
        "runner.connectors.ldap.write": lambda: _patch_ldap(after_commit),
        "runner.connectors.scim.connector": lambda: _patch_scim(after_commit),
        "runner.connectors.rest.connector": lambda: _patch_rest(after_commit),
        "runner.connectors.soap.connector": lambda: _patch_soap(after_commit),
    })
    if point == 0:
        atexit.register(lambda: print(f"commits: {commits}", file=sys.stderr))
    return cli.main(args)


def _patch_when_loaded(patches: dict) -> None:  # type: ignore[type-arg]
    """Apply each patch (module name -> patch) once its module is imported, checked whenever a
    connector class is loaded: a run then imports only the connectors its manifest uses (importing
    all of them, zeep and ldap3 among them, took most of a second of every killed run's start)."""
    from runner.connectors import registry

    load = registry._load

    def loading(target: str):  # type: ignore[no-untyped-def]
        cls = load(target)
        for module in [m for m in patches if m in sys.modules]:
            patches.pop(module)()
        return cls

    registry._load = loading  # type: ignore[assignment]


def _capture_stop_flags() -> list:  # type: ignore[type-arg]
    """The StopFlag each run of the CLI makes, so TIMELIMIT can make its time limit pass."""
    flags: list = []  # type: ignore[type-arg]
    make = cli._stop_on_signals

    def capturing(*a, **kw):  # type: ignore[no-untyped-def]
        flags.append(make(*a, **kw))
        return flags[-1]

    cli._stop_on_signals = capturing  # type: ignore[assignment]
    return flags


def _counting(method, after):  # type: ignore[no-untyped-def]
    @functools.wraps(method)
    def wrapper(*a, **kw):  # type: ignore[no-untyped-def]
        result = method(*a, **kw)
        after()
        return result
    return wrapper


def _patch_sql(after) -> None:  # type: ignore[no-untyped-def]
    from runner.connectors.sql import SqlConnector
    SqlConnector._apply_batch = _counting(SqlConnector._apply_batch, after)  # type: ignore[method-assign]


def _patch_jsondir(after) -> None:  # type: ignore[no-untyped-def]
    try:
        from provision_jsondir import files
    except ImportError:
        return
    files.write_doc = _counting(files.write_doc, after)  # type: ignore[attr-defined]


def _patch_scim(after) -> None:  # type: ignore[no-untyped-def]
    """Each SCIM write the server confirmed (one operation: a POST, PATCHes, a PUT or a DELETE) is a commit."""
    from runner.connectors.scim.connector import ScimConnector
    for kind in ("add", "update", "disable", "delete", "set_password"):
        method = f"op_{kind}"
        setattr(ScimConnector, method, _counting(getattr(ScimConnector, method), after))


def _patch_rest(after) -> None:  # type: ignore[no-untyped-def]
    """Each REST operation the service confirmed (a create with its members, an update, a delete)
    is a commit."""
    from runner.connectors.rest.connector import RestConnector
    _count_operations(RestConnector, after)


def _patch_soap(after) -> None:  # type: ignore[no-untyped-def]
    """The same for each SOAP operation."""
    from runner.connectors.soap.connector import SoapConnector
    _count_operations(SoapConnector, after)


def _count_operations(cls, after) -> None:  # type: ignore[no-untyped-def]
    for kind in ("add", "update", "disable", "delete", "set_password"):
        method = f"op_{kind}"
        setattr(cls, method, _counting(getattr(cls, method), after))


def _patch_ldap(after) -> None:  # type: ignore[no-untyped-def]
    """Each operation the LDAP connector sends is one write the server commits on its own."""
    from runner.connectors.ldap.write import Writer
    Writer.apply = _counting(Writer.apply, after)  # type: ignore[method-assign]


def _steal_lock(args: list[str]) -> None:
    """Rewrite the lock row as if another run had taken it over."""
    import sqlalchemy as sa

    from runner.mapping.checks import load
    from runner.state.opening import Mode, open_store

    manifest = load(args[1])
    store = open_store(manifest, Mode.WRITE)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE locks SET run_id = 'thief', pid = 1 WHERE pipeline = :p"), {"p": manifest.name})
    store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
