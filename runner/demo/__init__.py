"""``provision demo NAME``: every example in ``manifests/`` runnable on a bare machine in two commands.

``provision demo ldap`` starts a throwaway server for the example (slapd, scim2-server, json-server,
a spyne SOAP service, a PostgreSQL database) on 127.0.0.1 in a temporary folder, makes the sample HR
data there, prints the ``export`` lines the manifest needs and what to run next, and stays in the
foreground until Ctrl-C or SIGTERM, when it stops the server by its PID and removes the folder.
``provision demo ldap -- provision run manifests/hr-to-ldap.yaml`` runs a command with those variables
instead, and stops everything when it ends (for CI and the tests).

This package is at the command line's level: it starts servers, which the engine never knows about.
``tests/servers/`` starts the same servers through these modules (slapd, scim, jsonserver,
soapservice, process). The examples' shared convention for variables is docs/examples.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from runner.errors import UsageError

USAGE = "provision demo [NAME] [--port N] [-- COMMAND ...]"


def main(argv: Sequence[str]) -> int:
    """``provision demo`` with its arguments (everything after ``demo``); the exit code."""
    from runner.demo.examples import EXAMPLES, find
    from runner.demo.session import demo, listing

    args = list(argv)
    command = args[args.index("--") + 1:] if "--" in args else []
    own = args[:args.index("--")] if "--" in args else args
    parser = argparse.ArgumentParser(prog="provision demo", usage=USAGE, description=listing(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", metavar="NAME", help="the example (without it, the list)")
    parser.add_argument("--port", type=int, metavar="N", help="the server's port on 127.0.0.1 (default: a free one)")
    parsed = parser.parse_args(own)
    if parsed.name is None:
        if command:
            raise UsageError(f"{USAGE}: name the example to run {command[0]} with")
        print(listing())
        return 0
    example = find(parsed.name)
    if example is None:
        raise UsageError(f"no demo called {parsed.name!r}; the demos: {', '.join(e.name for e in EXAMPLES)}")
    if "--" in args and not command:
        raise UsageError(f"{USAGE}: give a command after --")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UsageError(f"--port {parsed.port}: give a port between 1 and 65535")
    return demo(example, parsed.port, command)
