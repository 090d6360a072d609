"""Command line: parse arguments, call the engine, print, map outcomes to exit codes.

Exit codes, the same for every command (docs/operations.md, "Exit codes", is the one table):

- 0 all good;
- 1 some objects failed, or a pass stopped for what a system answered (a CSV export cut short,
  a table that is missing);
- 2 invalid manifest or usage, or an optional package the manifest needs is not installed
  (``pip install 'provision[postgres]'``): nothing ran;
- 3 stopped: the pipeline's lock is held, a safety rule tripped, or the run reached its
  ``--time-limit`` (what was in flight is recorded; the next run carries on);
- 4 environment or state problem: the state store is locked by another process past the busy
  timeout, read-only, unreadable, damaged or from a newer provision; a disk is full; a file
  cannot be written. Fix the machine and run again: what was committed is kept;
- 5 a system could not be reached, the connection to it was lost, or it refused the
  credentials (also when objects failed besides: the more urgent page);
- 130 / 143 interrupted by SIGINT / SIGTERM (what was in flight is recorded; the next run
  carries on);
- 141 the output pipe was closed early (``provision plan | head``): quietly, like other tools
  killed by SIGPIPE; the command itself had finished its work.

Never a traceback for these; "internal error" (exit 1) is kept for bugs. With ``--output json``
(every command has it) stdout holds exactly one JSON document, errors included:
``{"error": ..., "exit_code": N}``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import io
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner import __version__, durations, secrets
from runner.actions import Action
from runner.errors import (  # noqa: F401 - the EXIT_* names are the command line's, for those who import them
    EXIT_BROKEN_PIPE,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_UNAVAILABLE,
    ManifestError,
    ProvisionError,
    StoppedError,
    missing_dependency,
)

#: the cyclic garbage collector's thresholds for a command's process (Python's are 700, 10, 10)
GC_THRESHOLDS = (50_000, 20, 20)
_frozen = False  # tune_gc() has frozen the start-up objects


def tune_gc() -> None:
    """A run allocates millions of short-lived dicts and tuples (records, rows, operations) that
    reference counting frees; with Python's thresholds the cyclic collector still ran every 700
    allocations, and its older generations walked the long-lived start-up objects again and
    again: 8-10% of an initial cycle's CPU (issue 25). Collecting every 50,000 keeps that to a
    few MB of garbage waiting, and gc.freeze() takes what start-up made so far out of the walks.
    Every command's process does this (bench/ calls it where it runs a command in-process).

    The freeze happens once per process: a program (or a test session) that calls ``main()`` over
    and over would otherwise freeze the garbage of every call before it, and never free it."""
    global _frozen
    gc.set_threshold(*GC_THRESHOLDS)
    if not _frozen:
        gc.freeze()
        _frozen = True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    gc.set_threshold(*GC_THRESHOLDS)  # at once: parsing the manifest allocates too (tune_gc below freezes)
    _Parser.json_errors = _wants_json(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False))
    from runner.distributed.hooks import install

    install()  # connectors' budget: blocks are kept in Redis (runner/distributed/budgets.py), loaded when named
    tune_gc()
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is reported below, not by the interpreter
        return code
    except BrokenPipeError:  # EPIPE: the reader went away (provision plan | head)
        return _broken_pipe()
    except ManifestError as exc:
        return _invalid(args, exc)
    except StoppedError as exc:
        message = secrets.redact(str(exc))
        if _json(args):
            print(json.dumps({"pipeline": None, "run_id": None, "status": "stopped", "error": message,
                              "exit_code": EXIT_STOPPED}))
        print(f"provision: stopped: {message}", file=sys.stderr)
        return EXIT_STOPPED
    except ProvisionError as exc:
        return _error(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _error(args, "interrupted", 130)
    except OSError as exc:  # the machine, not provision: a full disk, a file that cannot be written
        return _error(args, _os_problem(exc), EXIT_ENVIRONMENT)
    except ImportError as exc:  # an optional package (an extra) that is not installed, or a bug
        missing = missing_dependency(exc)
        if missing is not None:
            return _error(args, str(missing), missing.exit_code)
        return _internal_error(args, exc)
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        return _internal_error(args, exc)


def _internal_error(args: argparse.Namespace, exc: BaseException) -> int:
    code = _error(args, f"internal error: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if os.environ.get("PROVISION_DEBUG"):
        print(secrets.redact(traceback.format_exc()), file=sys.stderr)
    else:
        print("provision: set PROVISION_DEBUG=1 for the traceback, and please report it", file=sys.stderr)
    return code


def _json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "text") == "json"


def _error(args: argparse.Namespace | None, message: str, code: int, **more: Any) -> int:
    """Say what went wrong on stderr and return ``code``; with ``--output json``, also as
    ``{"error": ..., "exit_code": N}`` on stdout, so a script always gets one JSON document."""
    message = secrets.redact(message)
    print(f"provision: {message}", file=sys.stderr)
    if args is not None and _json(args):
        print(secrets.redact(json.dumps({"error": message, "exit_code": code, **more}, ensure_ascii=False,
                                        default=str)))
    return code


def _invalid(args: argparse.Namespace, exc: ManifestError) -> int:
    """An invalid manifest: one ``FILE:LINE:COL: path: message`` line per problem on stderr (and
    the problems as JSON on stdout with ``--output json``)."""
    for problem in exc.problems:
        print(secrets.redact(str(problem)), file=sys.stderr)
    if _json(args):
        print(secrets.redact(json.dumps({"error": "invalid manifest", "exit_code": EXIT_INVALID,
                                         "problems": _problems_json(exc.problems)}, ensure_ascii=False)))
    return EXIT_INVALID


def _problems_json(problems: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"file": p.file, "line": p.line, "column": p.column, "path": p.path, "message": p.message}
            for p in problems]


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON output, read before argparse (so that a usage
    error is answered in JSON too)."""
    for i, arg in enumerate(argv):
        if arg in ("--output=json", "--format=json"):
            return True
        if arg in ("--output", "--format") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
    return False


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error also printed as JSON on stdout under ``--output json``."""

    json_errors = False

    def error(self, message: str) -> Any:
        if _Parser.json_errors:
            print(json.dumps({"error": f"{self.prog}: {message}", "exit_code": EXIT_INVALID}))
        super().error(message)


def _broken_pipe() -> int:
    """Stop writing to the closed pipe: what is still buffered goes to /dev/null, so the
    interpreter's last flush does not print "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file descriptor (tests capture stdout): nothing is flushed at exit
    return EXIT_BROKEN_PIPE


_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _os_problem(exc: OSError) -> str:
    """An OSError as a sentence naming the file and what to do."""
    file = exc.filename or _file_being_written(exc)
    if isinstance(file, io.IOBase):  # closed now, so nothing tries to write to it again at exit
        with contextlib.suppress(OSError):
            file.close()
        file = file.name
    where = f" ({file})" if file else ""
    if exc.errno in _FULL:
        what = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is exhausted"
        return (f"no space left: {what}{where}. Free some space there (or raise the quota) and run again; "
                "what was committed before is kept and the next run carries on")
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _DENIED:
        return (f"cannot write{where}: {reason}. Give the user running provision access to it, or choose "
                "another place; nothing after the last commit was kept")
    return f"{reason}{where}: a problem of the machine, not of the manifest; fix it and run again"


def _file_being_written(exc: BaseException) -> io.IOBase | str | None:
    """The open file the failing code was writing, looked up in its frames (a failed write()
    does not say which file it was): the innermost frame with a file among its locals, or among
    the attributes of its ``self`` (such as the provisioning log's handle); standard output when
    the error came straight from the command's own print()."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        values = list(frame.f_locals.values())
        owner = frame.f_locals.get("self")
        values += list(getattr(owner, "__dict__", {}).values())
        for value in values:
            if isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str) \
                    and not value.closed and value.writable():
                return "standard output" if value.name == "<stdout>" else value
    if frames and frames[-1].f_code.co_filename == __file__:  # print() leaves no frame: ours print to stdout
        _broken_pipe()  # what is still buffered must not be tried again at exit
        return "standard output"
    return None


def _setup_logging(verbose: bool, quiet: bool = False) -> None:
    """Messages of the 'provision' logger go to stderr, redacted; stdout stays for results."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("provision: %(message)s"))
    handler.addFilter(_RedactFilter())
    logger = logging.getLogger("provision")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = secrets.redact(record.getMessage())
        record.args = ()
        return True


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="provision", description="Declarative identity provisioning.")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="the version, Python's, and each installed connector with its distribution and version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check manifests; one line per problem")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--online", action="store_true",
                   help="also open the connectors and check mappings against the systems' own schemas")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("discover", help="open a manifest's connectors and print what each system holds: "
                                        "object types, attributes, server features (for writing mappings)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--connector", action="append", default=[], metavar="NAME",
                   help="only this connector (repeatable; default: all)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_discover)

    for name, helptext in (("run", "import, compute and export"),
                           ("plan", "import and compute; print what run would export, change nothing in targets")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", type=Path, metavar="FILE")
        p.add_argument("--output", "--format", choices=("text", "json", "markdown") if name == "plan" else
                       ("text", "json"), default="text",
                       help="markdown (plan): counts and operations to paste into a pull request")
        p.add_argument("--object-type", action="append", default=[], metavar="NAME",
                       help="only this object type (repeatable)")
        p.add_argument("--no-import", action="store_true",
                       help="skip reading sources; compute from the state store (e.g. after a mapping change)")
        p.add_argument("--log-file", metavar="PATH", help="append the provisioning log (JSON lines) here")
        if name == "run":
            p.add_argument("--metrics-file", metavar="PATH", type=Path,
                           help="write Prometheus textfile metrics here after the run (node_exporter's textfile "
                                "collector reads them)")
        p.add_argument("--full", action="store_true", help="read sources whole, ignoring delta watermarks")
        p.add_argument("--full-export", action="store_true",
                       help="re-send every in-scope object's mapped attributes (a target that lost data or drifted)")
        p.add_argument("--partition", metavar="NAME", help="import only this source partition")
        p.add_argument("--allow-deletes", metavar="N|all", type=_allowance,
                       help="let this run delete or disable up to N objects per type (all: any number), past "
                            "the deletion guard (safety.max_deletes)")
        p.add_argument("--retry-now", action="store_true",
                       help="send exports that failed in earlier runs now: those waiting for their next attempt "
                            "(back-off) and those held after a permanent error")
        p.add_argument("--time-limit", metavar="DURATION", type=_duration,
                       help="stop cleanly once this long has passed (90s, 50m, 2h): what is in flight is "
                            "recorded, the run exits 3 and the next one carries on; set it below a cron "
                            "job's timeout so the scheduler never has to kill a run")
        _reconcile_arguments(p)
        if name == "plan":
            p.add_argument("--out", metavar="PLAN", type=Path,
                           help="save the plan (every operation, with fingerprints of its inputs) for "
                                "`provision apply PLAN`, which sends exactly it or refuses")
            p.add_argument("--expires", metavar="DURATION", type=_duration,
                           help="how long a saved plan may be applied (default 72h)")
            p.add_argument("--against", metavar="OLD", type=Path,
                           help="simulate a manifest change: compute this manifest and OLD over the state store "
                                "(no source read, no target contact) and show what the change does to each object")
            p.add_argument("--rev", metavar="REVISION",
                           help="like --against, with OLD this same file at a git revision (HEAD, main, a commit)")
        if name == "run":
            p.add_argument("--adopt-report", action="store_true",
                           help="read the target and list how each of its objects would link (by the match and "
                                "correlate rules), then stop: nothing is written to the target")
        _view_arguments(p)
        p.set_defaults(func=cmd_run, plan=name == "plan")

    p = sub.add_parser("apply", help="send exactly the operations of a plan saved with `plan --out`; refuse "
                                     "(exit 3, nothing sent) when the manifest, a source or a target changed since")
    p.add_argument("plan_file", type=Path, metavar="PLAN")
    p.add_argument("--replan", action="store_true",
                   help="plan again with the same options, over the same file, for another review; nothing is sent")
    p.add_argument("--output", "--format", choices=("text", "json"), default="text")
    p.add_argument("--log-file", metavar="PATH", help="append the provisioning log (JSON lines) here")
    p.add_argument("--time-limit", metavar="DURATION", type=_duration,
                   help="stop cleanly once this long has passed; the rest is left to a later run")
    p.add_argument("--metrics-file", metavar="PATH", type=Path, help="write Prometheus textfile metrics here after it")
    _view_arguments(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("approve", help="release named objects the deletion guard holds (and no others): the next "
                                       "run, or apply of the plan, sends exactly those")
    p.add_argument("file", type=Path, metavar="FILE_OR_PLAN", help="the manifest, or a plan saved with plan --out")
    p.add_argument("run", nargs="?", metavar="RUN", help="the run whose held objects these are (provision status)")
    p.add_argument("--anchor", action="append", default=[], metavar="ANCHOR",
                   help="an object's source anchor (repeatable); without it, every held object")
    p.add_argument("--object-type", action="append", default=[], metavar="NAME", help="only this object type")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("check", help="reconcile with the targets without writing to them: exit 0 when they are "
                                     "as the mappings say, 1 when something differs; --fix repairs it")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--fix", action="store_true", help="apply the reactions (a run that reconciles first)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("--object-type", action="append", default=[], metavar="NAME", help="only this object type")
    p.add_argument("--allow-deletes", metavar="N|all", type=_allowance,
                   help="with --fix: let it delete or disable up to N objects per type past the deletion guard")
    p.add_argument("--rebind", action="store_true", help="the target is another system now: reconcile with it")
    p.add_argument("-v", "--verbose", action="store_true", help="progress messages on stderr")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("hook", help="for pre-commit (.pre-commit-hooks.yaml, docs/ci.md): validate, or run the "
                                    "mapping tests of, the manifests the given files concern; other files are skipped")
    p.add_argument("check", choices=("validate", "test"))
    p.add_argument("files", nargs="*", type=Path, metavar="FILE",
                   help="changed files: manifests, mapping files and mapping tests count; a mapping file or test "
                        "file brings the manifests (of this git work tree) that use it")
    p.set_defaults(func=cmd_hook)

    p = sub.add_parser("test", help="run the mapping tests kept beside a manifest; no connector is contacted")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="a manifest (its tests: and *.mapping-tests.yaml beside it) or a .mapping-tests.yaml file")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("preview", help="take one source object through scope, match, mapping and diff; "
                                       "--apply exports it")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--object-type", required=True, metavar="NAME")
    p.add_argument("--anchor", required=True, metavar="ANCHOR", help="the object's source anchor")
    p.add_argument("--apply", action="store_true", help="export this one object (takes the pipeline's lock)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="store_true", help="progress messages on stderr")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("serve", help="a SCIM 2.0 endpoint (for Microsoft Entra provisioning) as the source of "
                                     "the manifest's scim-endpoint object types: each request is provisioned at once")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="the port to listen on (default 8443)")
    p.add_argument("--base-path", default="/scim", help="where the SCIM endpoints start (default /scim: "
                                                         "Entra's Tenant URL is https://HOST:PORT/scim)")
    p.add_argument("--token-env", metavar="NAME", help="the environment variable holding the bearer token "
                                                       "(default: the manifest's serve.token)")
    p.add_argument("--certfile", type=Path, help="TLS: a PEM certificate chain (Entra provisions only over HTTPS)")
    p.add_argument("--keyfile", type=Path, help="TLS: the certificate's key, if not in the certificate file")
    p.set_defaults(func=cmd_serve)

    _distributed_parsers(sub)

    p = sub.add_parser("status", help="last runs, object counts and failures")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("--failures", metavar="N|all", type=_failures_shown, default=20,
                   help="failures listed per object type (default 20; all: every one)")
    p.add_argument("--distributed", action="store_true",
                   help="also the runs submitted to workers (queued, running, finished: task, worker, outcome), "
                        "from the result backend; shown anyway when PROVISION_RESULT_BACKEND or "
                        "PROVISION_BROKER_URL is set")
    p.add_argument("--tasks", type=int, default=10, metavar="N", help="with --distributed: the last N runs (default 10)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="one self-contained HTML page: runs over time, failures grouped by error, "
                                      "the pending queue, held deletes, quarantine")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--html", type=Path, metavar="OUT", required=True, help="the page to write")
    p.add_argument("--runs", type=int, default=30, metavar="N", help="the last N runs (default 30)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("logs", help="the provisioning log as steps per object (import, scope, match, action, "
                                    "export), newest first")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--anchor", metavar="ANCHOR", help="one object's story")
    p.add_argument("--object-type", metavar="NAME")
    p.add_argument("--action", metavar="ACTION", help="add, update, rename, disable, delete, replace, ...")
    p.add_argument("--result", choices=("ok", "failed"))
    p.add_argument("--since", metavar="DURATION", help="only the last 24h, 7d, ...")
    p.add_argument("--run", metavar="RUN", help="only this run's entries")
    p.add_argument("--limit", type=int, default=200, metavar="N", help="at most N entries (default 200)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("pending", help="the queue of exports: in doubt, blocked, waiting, failing and due, with "
                                       "their action, attempts, last error and next attempt")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--anchor", action="append", default=[], metavar="ANCHOR", help="only this object (repeatable)")
    p.add_argument("--all", action="store_true", help="every pending export (default: the first 200 per type)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_pending)

    for name, helptext in (("retry", "send named objects' failed exports with the next run, past their back-off"),
                           ("drop", "discard named objects' pending exports (logged; asks first unless --yes)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", type=Path, metavar="FILE")
        p.add_argument("--anchor", action="append", default=[], required=True, metavar="ANCHOR",
                       help="the object's source anchor (repeatable)")
        if name == "drop":
            p.add_argument("--yes", action="store_true", help="do not ask")
        p.set_defaults(func=cmd_unstick, action=name)

    p = sub.add_parser("release", help="lift a pipeline's quarantine: the next run goes ahead without a probe")
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("demo", usage="provision demo [NAME] [--port N] [-- COMMAND ...]",
                       help="run an example on this machine: a throwaway server for it (slapd, scim2-server, "
                            "json-server, SOAP, PostgreSQL) on 127.0.0.1 in the foreground, the variables it needs "
                            "printed, all of it stopped and removed on Ctrl-C (docs/examples.md)")
    p.add_argument("demo_args", nargs=argparse.REMAINDER, metavar="NAME [--port N] [-- COMMAND ...]",
                   help="the example (ldap, scim, rest, soap, postgresql, ...; none: the list); --port: the "
                        "server's port; a COMMAND after -- runs with the variables set, then everything stops")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("connectors", help="installed connectors, their versions and capabilities")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_connectors)

    p = sub.add_parser("schema", help="print or write a JSON Schema for editors (docs/editors.md): the manifest's, "
                                      "a mapping file's or a mapping-tests file's")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--kind", choices=SCHEMA_KINDS, help="which schema (default: manifest)")
    kind.add_argument("--mapping", action="store_const", dest="kind", const="mapping", help="same as --kind mapping")
    kind.add_argument("--mapping-tests", action="store_const", dest="kind", const="mapping-tests",
                      help="same as --kind mapping-tests")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write it to FILE instead of printing it, with the schemas it refers to beside it")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("schedule", help="print what runs a pipeline on a schedule: a crontab line, a systemd "
                                        "service and timer, or a Kubernetes CronJob (docs/scheduling.md)")
    p.add_argument("file", type=Path, metavar="FILE")
    which = p.add_mutually_exclusive_group(required=True)
    for kind, what in (("cron", "one crontab line"), ("systemd", "a .service and its .timer"),
                       ("kubernetes", "a CronJob with a ConfigMap holding the manifest")):
        which.add_argument(f"--{kind}", dest="scheduler", action="store_const", const=kind, help=what)
    p.add_argument("--every", default="hourly", metavar="WHEN",
                   help="hourly (default), daily, weekly, monthly, an interval (15m, 2h), a cron expression "
                        "('0 6 * * 1-5'), or for --systemd an OnCalendar expression")
    p.add_argument("--time-limit", metavar="DURATION|none",
                   help="the run's --time-limit (default: five sixths of the interval, 50m for hourly); the "
                        "scheduler's own limit is a tenth later")
    p.add_argument("--working-dir", type=Path, metavar="DIR",
                   help="where the run starts: this folder as the scheduled machine has it (default: here)")
    p.add_argument("--user", metavar="USER", help="the user the run is (Kubernetes: a numeric id)")
    p.add_argument("--name", metavar="NAME", help="the unit, cron file or CronJob name (default provision-PIPELINE)")
    p.add_argument("--command", dest="executable", metavar="PATH",
                   help="the provision executable to run (default: this one)")
    p.add_argument("--env-file", type=Path, metavar="PATH",
                   help="cron, systemd: the file with the variables the manifest reads (default /etc/provision/NAME.env)")
    p.add_argument("--cron-log", type=Path, metavar="PATH",
                   help="cron: where the run's output is appended (default /var/log/provision/NAME.log)")
    p.add_argument("--image", metavar="IMAGE", help="kubernetes: the container image with provision installed")
    p.add_argument("--state-url-env", metavar="NAME",
                   help="kubernetes: the variable the manifest's state: is; the CronJob takes it from the Secret")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the files into DIR instead of printing them")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_schedule)
    for command in sub.choices.values():  # -v, -q and --output mean the same on every command
        have = {option for action in command._actions for option in action.option_strings}
        if "--verbose" not in have:
            command.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr")
        if "--quiet" not in have:
            command.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
        if "--output" not in have:
            command.add_argument("--output", choices=("text", "json"), default="text",
                                 help="json: one JSON document on stdout (errors too: {\"error\", \"exit_code\"})")
    return parser


class _Version(argparse.Action):
    """``provision --version``: provision's version, Python's, and every installed connector type
    with the distribution that brings it and its version (a plugin's from its entry point)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print("\n".join(version_lines()))
        parser.exit()


def version_lines() -> list[str]:
    """What ``provision --version`` prints."""
    import platform

    from runner.connectors.base import INTERFACE_VERSION
    from runner.connectors.registry import extras, installed

    lines = [f"provision {__version__} (connector interface {INTERFACE_VERSION})",
             f"Python {platform.python_version()} ({sys.executable})", "connectors:"]
    found = sorted(installed().values(), key=lambda i: i.type_name)
    width = max((len(i.type_name) for i in found), default=0)
    lines += [f"  {i.type_name:<{width}}  {i.version} ({i.distribution})" for i in found]
    lines.append("extras:")
    for name, (packages, missing) in extras().items():
        state = f"missing: pip install 'provision[{name}]'" if missing else ", ".join(packages)
        lines.append(f"  {name:<{width}}  {state}")
    return lines


def _view_arguments(p: argparse.ArgumentParser) -> None:
    """What a long command shows while it works: live progress on a terminal, JSON lines for log
    collectors, more detail, or nothing."""
    p.add_argument("-v", "--verbose", action="store_true", help="progress messages on stderr")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, no progress display")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: one JSON line on stderr per pass and per 10,000 objects (for log collectors)")


def _progress(args: argparse.Namespace) -> Any:
    from runner.progress_view import choose

    return choose(getattr(args, "quiet", False), getattr(args, "log_format", "text"))


def _reconcile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reconcile", action="store_true",
                   help="read the target first and react to what it holds (drifted, missing, unlinked and orphan "
                        "objects, as the object type's reconcile: says)")
    p.add_argument("--rebind", action="store_true",
                   help="the state describes another target system than the manifest reaches now: accept the new "
                        "one and reconcile every object with it by correlation before anything is written")


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.engine.online import Unreachable, online_problems
    from runner.mapping.checks import load

    status = EXIT_OK
    files: list[dict[str, Any]] = []
    for file in args.files:
        shown: dict[str, Any] = {"file": str(file), "online": args.online}
        files.append(shown)
        try:
            problems = online_problems(file) if args.online else (load(file) and [])
        except ManifestError as exc:
            problems = exc.problems
        except Unreachable as exc:  # 5: the system is down or refused the login; 4: it answered wrong
            code = EXIT_UNAVAILABLE if exc.unavailable else EXIT_ENVIRONMENT
            message = secrets.redact(f"{file}: {exc} (validate --online needs the systems reachable)")
            print(f"provision: {message}", file=sys.stderr)
            shown.update(ok=False, error=message, exit_code=code)
            status = max(status, code)
            continue
        for problem in problems:
            print(secrets.redact(str(problem)), file=sys.stderr)
        shown.update(ok=not problems, problems=_problems_json(problems))
        if problems:
            status = max(status, EXIT_INVALID)
        elif not _json(args):
            print(f"{file}: ok" + (" (checked against the systems)" if args.online else ""))
    if _json(args):
        print(secrets.redact(json.dumps({"ok": status == EXIT_OK, "exit_code": status, "files": files},
                                        ensure_ascii=False)))
    return status


def cmd_discover(args: argparse.Namespace) -> int:
    from runner.connectors.base import ConfigurationError
    from runner.engine.online import Unreachable, discover

    try:
        found = discover(args.file, args.connector)
    except ManifestError as exc:
        return _invalid(args, exc)
    except ConfigurationError as exc:
        return _error(args, str(exc), EXIT_INVALID)
    except Unreachable as exc:
        return _error(args, str(exc), EXIT_UNAVAILABLE if exc.unavailable else EXIT_ENVIRONMENT)
    if args.output == "json":
        print(secrets.redact(json.dumps([d.as_json() for d in found], ensure_ascii=False, default=str)))
        return EXIT_OK
    from runner.report import discovery_lines

    for d in found:
        for line in discovery_lines(d):
            print(secrets.redact(line))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from runner.engine.context import RunOptions
    from runner.engine.run import execute

    adopt = getattr(args, "adopt_report", False)
    if adopt:
        return _adopt_report(args)
    options = RunOptions(plan=args.plan, object_types=tuple(args.object_type), no_import=args.no_import,
                         log_file=args.log_file, full_import=args.full, full_export=args.full_export,
                         partition=args.partition,
                         stop=None if args.plan else _stop_on_signals(args.time_limit),
                         allow_deletes=args.allow_deletes, retry_now=args.retry_now,
                         reconcile=args.reconcile, rebind=args.rebind)
    if args.plan and (args.against or args.rev):
        return _simulation(args)
    if args.plan and args.out:
        options.plan_out = str(args.out)
        if args.expires:
            options.plan_expires = args.expires[1]
    shown = _Shown()
    options.progress = view = _progress(args)
    try:
        summary = execute(args.file, options, shown.add if args.plan else None)
    finally:
        if hasattr(view, "close"):
            view.close()
    _metrics(args, args.file, summary)
    return _print_outcome(args, summary, shown, plan=args.plan)


def _metrics(args: argparse.Namespace, manifest: Path, summary: Any) -> None:
    if getattr(args, "metrics_file", None) and summary.kind != "plan":
        from runner.engine.metrics import publish

        publish(manifest, summary.as_json(), args.metrics_file)


def _simulation(args: argparse.Namespace) -> int:
    from runner.engine.simulate import simulate
    from runner.report import simulation_lines

    sim = simulate(args.file, args.against, args.rev, tuple(args.object_type))
    if args.output == "json":
        print(secrets.redact(json.dumps(sim.as_json(), ensure_ascii=False, default=str)))
    else:
        print("\n".join(simulation_lines(sim, markdown=args.output == "markdown")))
    return sim.exit_code


class _Shown:
    """The plan's items kept for printing (the first PLAN_ITEMS_SHOWN), and how many more."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.more = 0

    def add(self, item: Any) -> None:
        if len(self.items) < PLAN_ITEMS_SHOWN:
            self.items.append(item)
        else:
            self.more += 1


def cmd_apply(args: argparse.Namespace) -> int:
    from runner.engine.apply import apply_plan

    shown = _Shown()
    view = _progress(args)
    try:
        summary = apply_plan(args.plan_file, replan=args.replan, log_file=args.log_file,
                             stop=None if args.replan else _stop_on_signals(args.time_limit),
                             on_plan_item=shown.add, progress=view)
    finally:
        if hasattr(view, "close"):
            view.close()
    if summary.kind == "apply":
        from runner.engine import planfile

        _metrics(args, planfile.read(args.plan_file).manifest_path, summary)
    return _print_outcome(args, summary, shown, plan=args.replan)


def cmd_approve(args: argparse.Namespace) -> int:
    from runner.engine.approve import approve

    result = approve(args.file, args.run, args.anchor, tuple(args.object_type))
    if args.output == "json":
        print(secrets.redact(json.dumps(result.as_json(), ensure_ascii=False)))
        return EXIT_OK
    for name, held in result.approved.items():
        for h in held:
            print(secrets.redact(f"approved: {name} {h.source_anchor}: {h.action}" + (f" ({h.name})" if h.name else "")))
    print("the next run sends these although the deletion guard holds the others"
          + (" (or `provision apply` of the plan)" if result.from_plan else ""))
    return EXIT_OK


def _print_outcome(args: argparse.Namespace, summary: Any, shown: _Shown, plan: bool,
                   about: dict[str, Any] | None = None) -> int:
    """A run's, plan's or apply's summary on stdout, in the output format asked for; ``about``:
    more keys for JSON (a submitted run's task id and worker)."""
    items, more = shown.items, shown.more
    if args.output == "json":
        out = {**summary.as_json(), **(about or {})}
        if plan:
            out["changes"] = [i.as_json() for i in items]
            out["changes_not_shown"] = more
        print(secrets.redact(json.dumps(out, ensure_ascii=False, default=str)))
        return summary.exit_code
    if args.output == "markdown":
        from runner.report import plan_markdown

        print(plan_markdown(summary, items, more))
        return summary.exit_code
    print(_summary_text(summary, plan))  # counts first, then each object, as terraform plan does
    for item in items:
        print(secrets.redact(_plan_line(item)))
    if more:
        print(f"... and {more} more (see --output json, or narrow with --object-type)")
    if summary.plan_file:
        print(f"\nthe plan was saved to {summary.plan_file}; `provision apply {summary.plan_file}` sends exactly "
              "these operations, or refuses if anything they depend on changed")
    return summary.exit_code


PLAN_ITEMS_SHOWN = 10000


def cmd_check(args: argparse.Namespace) -> int:
    from runner.engine.check import check
    from runner.engine.context import RunOptions

    options = RunOptions(object_types=tuple(args.object_type), allow_deletes=args.allow_deletes, rebind=args.rebind,
                         stop=_stop_on_signals() if args.fix else None)
    report = check(args.file, options, fix=args.fix)
    if args.output == "json":
        print(secrets.redact(json.dumps(report.as_json(), ensure_ascii=False, default=str)))
        return report.exit_code
    print(secrets.redact(_check_text(report)))
    return report.exit_code


def _check_text(report: Any) -> str:
    from runner.report import check_lines

    if report.fixed:
        head = [_summary_text(report.summary, False)]
    else:
        verdict = ("differs from what the mappings say" if report.differs else
                   "could not be read whole" if report.unchecked else "as the mappings say")
        head = [f"check {report.summary.run_id} of {report.summary.pipeline}: the target {verdict}"]
        head += [f"  {name}: stopped: {c.error}" for name, c in report.summary.object_types.items() if c.error]
        head += [f"  {name}: the deletion guard would stop a run: {c.guard}"
                 for name, c in report.summary.object_types.items() if c.guard]
        head += [f"  {name}: not checked: its target connector cannot read it" for name in report.unchecked]
    return "\n".join(head + check_lines(report))


def _adopt_report(args: argparse.Namespace) -> int:
    """``run --adopt-report``: a check that lists how every target object links, then stops."""
    from runner.engine.check import check
    from runner.engine.context import RunOptions
    from runner.report import adopt_lines

    options = RunOptions(object_types=tuple(args.object_type), no_import=args.no_import, rebind=args.rebind)
    report = check(args.file, options, links=True)
    if args.output == "json":
        print(secrets.redact(json.dumps(report.as_json(), ensure_ascii=False, default=str)))
    else:
        print(secrets.redact("\n".join(adopt_lines(report))))
    return report.summary.exit_code if report.summary.status not in ("ok", "partial") else EXIT_OK


def _allowance(text: str) -> int:
    if text == "all":
        return -1
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError("a number of objects, or all")


def _duration(text: str) -> tuple[str, float]:
    """``90s``, ``50m``, ``2h`` -> (the text, seconds)."""
    value = durations.seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError("a duration such as 90s, 50m or 2h")
    return text.strip(), value


def _stop_on_signals(time_limit: tuple[str, float] | None = None) -> Any:
    """SIGINT and SIGTERM ask the run to stop at the next safe point (the round in flight is
    recorded first); a second one stops it at once, which is still safe (see docs/reliability)."""
    import signal
    import time

    from runner.engine.context import StopFlag

    flag = StopFlag(time.monotonic() + time_limit[1], time_limit[0]) if time_limit else StopFlag()

    def ask(signum: int, _frame: Any) -> None:
        flag.set(signum)
        print(f"provision: {signal.Signals(signum).name}: finishing what is in flight, then stopping "
              "(again to stop at once)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, ask)
    signal.signal(signal.SIGTERM, ask)
    return flag


_SYMBOL = {Action.ADD: "+", Action.UPDATE: "~", Action.DISABLE: "!", Action.DELETE: "-", Action.RENAME: ">",
           Action.REPLACE: "±", Action.DELETE_FIRST: "-", Action.SET_PASSWORD: "~"}


def _plan_line(item: Any) -> str:
    head = f"{_SYMBOL.get(item.action, '?')} {item.object_type} {item.anchor}: {item.action}"
    if item.steps:
        head += f" (as {' then '.join(item.steps)})"
    if item.held:
        head += "  (held by the deletion guard: `provision approve` or --allow-deletes releases it)"
    if item.error:
        head += f"  (retrying after: {item.error})"
    from runner.report import change_lines

    return "\n".join([head] + [f"    {line}" for line in change_lines(item.changes)])


def _summary_text(summary: Any, plan: bool) -> str:
    verb = "plan" if plan else getattr(summary, "kind", "run")
    lines = [f"{verb} {summary.run_id} of {summary.pipeline}: {summary.status}{_took(summary)}"]
    if summary.refused is not None:
        lines.append(f"refused: nothing was sent; {len(summary.refused)} reason{'s' if len(summary.refused) != 1 else ''}:")
        lines += [f"  {reason}" for reason in summary.refused[:PLAN_ITEMS_SHOWN]]
        lines.append("review a new plan: `provision apply PLAN --replan` (same options), then apply it")
    if summary.unplanned:
        lines.append(f"{summary.unplanned} operations pending now are not in the plan: left for a later run")
    for name, c in summary.object_types.items():
        if summary.refused is not None and not c.error:
            continue  # nothing was sent: the counts would only say so
        if plan:
            line = (f"  {name}: {c.imported} imported; would add {c.added}, update {c.updated}, "
                    f"disable {c.disabled}, delete {c.deleted}; {c.unchanged} unchanged, {c.failed} failed")
        else:
            line = (f"  {name}: {c.imported} imported, {c.added} added, {c.updated} updated, {c.renamed} renamed, "
                    f"{c.disabled} disabled, {c.deleted} deleted, {c.unchanged} unchanged, {c.failed} failed"
                    + (f", {c.recovered} recovered" if c.recovered else "")
                    + (f", {c.not_sent} not sent" if c.not_sent else "")
                    + f"; {c.out_of_scope} out of scope")
        if c.recovered:
            line += f"\n    {c.recovered} exports of an interrupted run were settled against the target first"
        if c.reconciled is not None:
            found = ", ".join(f"{n} {s}" for s, n in c.reconciled.items() if n)
            line += "\n    reconciled with the target: " + (found or "it held none of these objects yet")
        if c.guard:
            line += f"\n    {'would be ' if plan else ''}stopped by the deletion guard: {c.guard}"
        for attr, found in (c.proposed or {}).items():
            examples = "; ".join(f"{e['anchor']}: {json.dumps(e['current'], ensure_ascii=False, default=str)} -> "
                                 f"{json.dumps(e['proposed'], ensure_ascii=False, default=str)}"
                                 for e in found["examples"][:3])
            line += (f"\n    proposed rule for {attr} (not exported): differs on {found['differs']} objects, "
                     f"e.g. {examples}")
        if c.error:
            line += f"\n    stopped: {c.error}"
        if c.first_failures:
            named = ", ".join(f"{f['anchor']} ({f['action']}: {f['error'][:120]})" for f in c.first_failures)
            more = f" and {c.failed - len(c.first_failures)} more" if c.failed > len(c.first_failures) else ""
            line += (f"\n    failed: {named}{more}; all of them: `provision logs FILE --run {summary.run_id} "
                     "--result failed`")
        lines.append(line)
    if summary.status == "partial":
        lines.append("some objects failed: see `provision status` or the provisioning log for why")
    if summary.stopped_by:
        lines.append(summary.stopped_by)
    return secrets.redact("\n".join(lines))


def _took(summary: Any) -> str:
    import datetime as dt

    try:
        seconds = (dt.datetime.fromisoformat(summary.finished.replace("Z", "+00:00"))
                   - dt.datetime.fromisoformat(summary.started.replace("Z", "+00:00"))).total_seconds()
    except (AttributeError, ValueError):
        return ""
    return f" in {seconds:.1f} s"


def cmd_test(args: argparse.Namespace) -> int:
    from runner.mapping.testing import entra_note, load_suite, run_suite

    status = EXIT_OK
    files: list[dict[str, Any]] = []
    for file in args.files:
        shown: dict[str, Any] = {"file": str(file)}
        files.append(shown)
        try:
            suite = load_suite(file)
        except ManifestError as exc:
            for problem in exc.problems:
                print(secrets.redact(str(problem)), file=sys.stderr)
            shown.update(error="invalid manifest or mapping tests", problems=_problems_json(exc.problems))
            status = EXIT_INVALID
            continue
        if not suite.tests:
            message = (f"{file}: no mapping tests (add tests: to the manifest, or "
                       f"{file.stem}.mapping-tests.yaml beside it)")
            print(f"provision: {message}", file=sys.stderr)
            shown["error"] = message
            status = EXIT_INVALID
            continue
        outcomes = run_suite(suite)
        failed = sum(not o.passed for o in outcomes)
        shown.update(tests=[{"name": o.test.label, "where": o.test.where, "passed": o.passed,
                             "differences": o.differences} for o in outcomes],
                     passed=len(outcomes) - failed, failed=failed)
        if failed and status == EXIT_OK:
            status = EXIT_FAILED
        if _json(args):
            continue
        for outcome in outcomes:
            mark = "ok  " if outcome.passed else "FAIL"
            lines = [f"{mark}  {outcome.test.label}  ({outcome.test.where}){entra_note(outcome.test)}"]
            lines += [f"        {d}" for d in outcome.differences]
            print(secrets.redact("\n".join(lines)))
        print(f"{file}: {len(outcomes)} tests, {len(outcomes) - failed} passed"
              + (f", {failed} failed" if failed else ""))
    if _json(args):
        print(secrets.redact(json.dumps({"ok": status == EXIT_OK, "exit_code": status, "files": files},
                                        ensure_ascii=False, default=str)))
    return status


def cmd_preview(args: argparse.Namespace) -> int:
    from runner.engine.preview import preview
    from runner.report import render

    result = preview(args.file, args.object_type, args.anchor, apply=args.apply)
    if args.output == "json":
        print(secrets.redact(json.dumps(result.as_json(), ensure_ascii=False, default=str)))
    else:
        print(render(result))
    return result.exit_code


def _distributed_parsers(sub: Any) -> None:
    """``provision worker`` and ``provision submit``: the distributed mode (runner/distributed/,
    docs/distributed.md), with the broker from PROVISION_BROKER_URL."""
    p = sub.add_parser("worker", help="a Celery worker that runs submitted runs (the 'distributed' extra; "
                                      "broker: PROVISION_BROKER_URL)")
    p.add_argument("--queues", metavar="Q[,Q...]", help="the queues to read (default: PROVISION_QUEUE, else provision, "
                                                         "and the same with .slices: the slices of fanned-out runs)")
    p.add_argument("--concurrency", type=int, metavar="N", help="runs at once (default: the number of CPUs)")
    p.add_argument("--name", metavar="NAME@HOST", help="the worker's node name (default: provision-PID@host)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    _view_arguments(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("submit", help="enqueue a run for the workers and print its id; --wait: block until it "
                                      "ends, then print the summary and exit as `run` does")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--object-type", action="append", default=[], metavar="NAME", help="only this object type (repeatable)")
    p.add_argument("--queue", metavar="Q", help="the queue to send it to (default: PROVISION_QUEUE, else provision)")
    p.add_argument("--wait", action="store_true", help="wait for the run to end; its summary and exit code are run's")
    p.add_argument("--timeout", metavar="DURATION", type=_duration,
                   help="with --wait: give up waiting after this long (exit 3; the run goes on)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("--no-import", action="store_true", help="as for run")
    p.add_argument("--full", action="store_true", help="as for run")
    p.add_argument("--full-export", action="store_true", help="as for run")
    p.add_argument("--partition", metavar="NAME", help="as for run")
    p.add_argument("--allow-deletes", metavar="N|all", type=_allowance, help="as for run")
    p.add_argument("--retry-now", action="store_true", help="as for run")
    p.add_argument("--time-limit", metavar="DURATION", type=_duration,
                   help="as for run, counted from when a worker starts the run")
    p.add_argument("--fan-out", nargs="?", type=int, const=0, default=None, metavar="N",
                   help="cut the run into slices any worker takes (import per partition, compute in N anchor "
                        "ranges per sweep, default 4, export in batches); needs a PostgreSQL or MariaDB state store; "
                        "without it, the manifest's fan_out: decides")
    _reconcile_arguments(p)
    _view_arguments(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("beat", help="celery beat: submit a run of each manifest with schedule: (cron) when it is "
                                    "due, to the workers (the 'distributed' extra); run exactly one")
    p.add_argument("files", nargs="+", type=Path, metavar="MANIFEST_OR_DIR",
                   help="manifests, or folders whose *.yaml manifests are read (read again every --rescan)")
    p.add_argument("--schedule-file", type=Path, metavar="PATH",
                   help="where beat keeps when each entry last fired (default "
                        "$XDG_STATE_HOME/provision/beat-schedule, else ~/.local/state/provision/beat-schedule)")
    p.add_argument("--rescan", metavar="DURATION", type=_duration, default=("60s", 60.0),
                   help="how often the manifests are read again for new or changed schedules (default 60s)")
    p.add_argument("--max-interval", metavar="DURATION", type=_duration,
                   help="the longest beat sleeps between looks at the schedule (default: celery's, 5 minutes)")
    p.set_defaults(func=cmd_beat)


def cmd_worker(args: argparse.Namespace) -> int:
    from runner.distributed.worker import start

    queues = [q for q in (args.queues or "").split(",") if q] or None
    return start(queues, args.concurrency, "WARNING" if args.quiet else "INFO", args.name)


def cmd_beat(args: argparse.Namespace) -> int:
    from runner.distributed.beat import start

    if not args.quiet:
        logging.getLogger("provision").setLevel(logging.INFO)  # what beat sends is its log
    return start(args.files, args.schedule_file, args.max_interval[1] if args.max_interval else None,
                 args.rescan[1], "WARNING" if args.quiet else "INFO")


def cmd_submit(args: argparse.Namespace) -> int:
    from runner.distributed.client import submit, summary_from_json, wait

    if args.timeout and not args.wait:
        return _error(args, "--timeout: only with --wait", EXIT_INVALID)
    options = {"object_types": list(args.object_type), "no_import": args.no_import, "full": args.full,
               "full_export": args.full_export, "partition": args.partition, "allow_deletes": args.allow_deletes,
               "retry_now": args.retry_now, "reconcile": args.reconcile, "rebind": args.rebind,
               "time_limit": list(args.time_limit) if args.time_limit else None}
    if args.fan_out is not None:
        options["fan_out"] = args.fan_out or True
    if not args.file.is_file():
        return _error(args, f"{args.file}: no such manifest", EXIT_INVALID)
    sent = submit(args.file, options, args.queue)
    if not args.wait:
        print(json.dumps(sent.as_json()) if _json(args) else
              f"submitted a run of {sent.manifest} to queue {sent.queue}: task {sent.task_id}")
        return EXIT_OK
    print(f"provision: submitted as task {sent.task_id}; waiting for a worker", file=sys.stderr)
    outcome = wait(sent.task_id, args.timeout[1] if args.timeout else None)
    if "summary" not in outcome:
        if outcome.get("problems"):
            for p in outcome["problems"]:
                print(f"{p['file']}:{p['line']}:{p['column']}: {p['path']}: {p['message']}", file=sys.stderr)
        return _error(args, outcome["error"], outcome["exit_code"], task_id=sent.task_id,
                      **({"problems": outcome["problems"]} if outcome.get("problems") else {}))
    _print_outcome(args, summary_from_json(outcome["summary"]), _Shown(), plan=False,
                   about={"task_id": sent.task_id, "worker": outcome.get("worker")})
    return outcome["exit_code"]


def cmd_serve(args: argparse.Namespace) -> int:
    from runner.errors import UsageError
    from runner.serve.app import create_app
    from runner.serve.auth import from_settings
    from runner.serve.pipeline import PipelineStore
    from runner.serve.ratelimit import RateLimit
    from runner.serve.server import serve

    with PipelineStore(args.file) as store:
        token = None
        if args.token_env:
            token = os.environ.get(args.token_env)
            if not token:
                raise UsageError(f"--token-env {args.token_env}: that environment variable is not set")
        try:  # serve.token and/or serve.oauth; registers the secrets
            authenticator = from_settings(store.settings, token)
        except ValueError as e:
            raise UsageError(f"{args.file}: {e}") from None
        public = (store.settings.get("metrics") or {}).get("public", True)
        limit = store.settings.get("rate_limit")
        app = create_app(store, authenticator=authenticator, base_path=args.base_path, metrics_public=public,
                         kinds=store.kinds,
                         rate_limit=RateLimit(limit["per_second"], limit.get("burst")) if limit else None)
        serve(app, args.host, args.port, args.certfile, args.keyfile,
              log_level="warning" if args.quiet else "info")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from runner.engine.overview import overview
    from runner.htmlreport import render

    page = render(overview(args.file, runs=args.runs))
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(page, encoding="utf-8")
    if _json(args):
        print(json.dumps({"manifest": str(args.file), "html": str(args.html), "bytes": len(page.encode())}))
    else:
        print(f"{args.html}: the report of {args.file}")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from runner.engine.logs import Filters, logs
    from runner.report import change_lines

    found = logs(args.file, Filters(args.anchor, args.object_type, args.action, args.result, args.since, args.run,
                                    args.limit))
    if args.output == "json":
        print(secrets.redact(json.dumps(found, ensure_ascii=False, default=str)))
        return EXIT_OK
    lines = []
    for e in found["entries"]:
        commit = f", manifest {e['manifest_commit'][:12]}" if e.get("manifest_commit") else ""
        lines.append(f"{e['time']} {e['object_type']} {e['anchor']}: {e['action']} {e['result']} "
                     f"(run {e['run_id']}{commit})")
        for step in e["steps"]:
            lines.append(f"    {step['step']}: {step['outcome']}" + (f": {step['error']}" if step.get("error") else ""))
            for attr, change in (step.get("changes") or {}).items():
                lines += [f"        {text}" + (f"   [{change['rule']}]" if "rule" in change else "")
                          for text in change_lines({attr: change})]
    if not found["entries"]:
        lines.append("no entries match")
    elif found["more"]:
        lines.append(f"... the newest {args.limit} shown (--limit, or narrow with --since / --anchor)")
    print(secrets.redact("\n".join(lines)))
    return EXIT_OK


def cmd_unstick(args: argparse.Namespace) -> int:
    from runner.engine import unstick

    if args.action == "drop" and not args.yes:
        if not sys.stdin.isatty() or _json(args):  # no one to ask, or a script reading stdout
            return _error(args, "drop discards pending exports; add --yes to confirm", EXIT_INVALID)
        answer = input(f"discard the pending exports of {', '.join(args.anchor)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing was dropped")
            return EXIT_OK
    outcome = (unstick.drop if args.action == "drop" else unstick.retry)(args.file, args.anchor)
    if _json(args):
        print(secrets.redact(json.dumps({
            "action": args.action,
            "done": [{"object_type": name, "anchor": anchor, "action": action} for name, anchor, action in outcome.done],
            "in_doubt": [{"object_type": name, "anchor": anchor} for name, anchor in outcome.in_doubt]},
            ensure_ascii=False)))
        return EXIT_OK
    for name, anchor, action in outcome.done:
        print(f"{args.action}: {name} {anchor}: {action}" + (" is sent by the next run" if args.action == "retry"
                                                              else " discarded"))
    for name, anchor in outcome.in_doubt:
        print(f"{name} {anchor}: in doubt (sent by a run that died); the next run settles it first, left as it is")
    return EXIT_OK


def cmd_pending(args: argparse.Namespace) -> int:
    from runner.engine.overview import pending

    queue = pending(args.file, tuple(args.anchor), None if args.all else 200)
    if args.output == "json":
        print(secrets.redact(json.dumps(queue, ensure_ascii=False, default=str)))
        return EXIT_OK
    lines = []
    for name, items in queue["object_types"].items():
        lines.append(f"{name}: {len(items)} pending" + ("" if args.all or len(items) < 200 else " (the first 200; --all)"))
        for p in items:
            line = f"  {p['anchor']}: {p['action']}, {p['state']}, {p['attempts']} attempts"
            if p["state"] == "waiting":
                line += f", next attempt {p['next_attempt']}"
            if p["last_error"]:
                line += f"; last error: {p['last_error']}"
            lines.append(line)
    print(secrets.redact("\n".join(lines)))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from runner.engine.status import status

    report = status(args.file, failures=args.failures)
    distributed = _distributed_runs(args)
    if distributed is not None:
        report["distributed"] = distributed
    if args.output == "json":
        print(secrets.redact(json.dumps(report, ensure_ascii=False, default=str)))
        return EXIT_OK
    text = _status_text(report)
    if distributed is not None:
        text += "\n" + "\n".join(_distributed_lines(distributed, list(report["object_types"])))
    print(secrets.redact(text))
    return EXIT_OK


def _distributed_runs(args: argparse.Namespace) -> dict[str, Any] | None:
    """The pipeline's runs on workers, from the journal in the result backend (runner/distributed/
    journal.py): asked for with --distributed (then a backend that cannot be read is exit 5), or
    shown when the distributed mode's variables are set (then it is a line in the output)."""
    asked = args.distributed
    if not asked and not (os.environ.get("PROVISION_RESULT_BACKEND") or os.environ.get("PROVISION_BROKER_URL")):
        return None
    try:
        from runner.distributed.journal import journal

        kept = journal()
    except ProvisionError:  # the extra is not installed
        if asked:
            raise
        return None
    if not kept.kept:
        return {"runs": [], "error": f"the result backend {secrets.mask_url(kept.backend)} is not a database "
                                     "(db+postgresql+psycopg://...), so no journal of runs is kept"}
    try:
        return {"runs": kept.runs(str(args.file.resolve()), args.tasks)}
    except ProvisionError as exc:
        if asked:
            raise
        return {"runs": [], "error": str(exc)}


def _distributed_lines(found: dict[str, Any], order: list[str]) -> list[str]:
    """``provision status``'s section of runs on workers: one block per run (newest first), its
    slices as rows under it once runs fan out."""
    lines = ["runs on workers (newest first):"]
    if found.get("error"):
        lines.append(f"  {found['error']}")
    for r in found["runs"]:
        head = f"  {r['submitted'] or r['started'] or '?'}  {r['state']:8} task {r['task_id']}"
        head += f"  by {r['trigger'] or 'submit'}"
        if r["worker"]:
            head += f"  on {r['worker']}"
        lines.append(head)
        detail = []
        if r["state"] == "queued":
            detail.append(f"waiting in queue {r['queue']}" if not r["started"] else "back in the queue")
        if r["started"]:
            detail.append(f"started {r['started']}")
        if r["finished"]:
            detail.append(f"finished {r['finished']}")
        if (r["attempts"] or 0) > 1:
            detail.append(f"attempt {r['attempts']} (redelivered: an earlier worker died or the lock was held)")
        if r["run_id"]:
            detail.append(f"run {r['run_id']}")
        if r["exit_code"] is not None:
            detail.append(f"exit {r['exit_code']}")
        if detail:
            lines.append("      " + ", ".join(detail))
        if r.get("error"):
            lines.append(f"      {r['error']}")
        summary = r.get("summary")
        if summary:
            lines += _run_lines({"started": "", "kind": "run", "status": "", "run_id": "", "summary": summary},
                                order)[1:]
        for part in r.get("slices") or []:
            lines.append(f"      slice {part['kind']} {part['label'] or ''}: {part['state']}"
                         + (f" on {part['worker']}" if part["worker"] else ""))
    if not found["runs"] and not found.get("error"):
        lines.append("  none in the last 7 days")
    return lines


def _failures_shown(text: str) -> int | None:
    if text == "all":
        return None
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError("a number of failures per object type, or all")


def _status_text(report: dict[str, Any]) -> str:
    lines = [f"pipeline {report['pipeline']} (state: {report['state']})"]
    if report["lock"]:
        lines.append(f"  running now: {report['lock']}")
    if report.get("quarantine"):
        lines.append(f"  QUARANTINED: {report['quarantine']} (provision release FILE lifts it)")
    lines.append("object types:")
    for name, c in report["object_types"].items():
        lines.append(f"  {name}: {c['source_objects']} in source, {c['in_scope']} in scope, {c['linked']} linked in "
                     f"target, {c['pending']} pending ({c['in_doubt']} in doubt after an interrupted run), "
                     f"{c['failing']} failing")
        if c.get("reconciled"):
            found = ", ".join(f"{n} {s}" for s, n in sorted(c["reconciled"]["found"].items())) or "nothing amiss"
            lines.append(f"    last reconciled with the target at {c['reconciled']['at']}: {found}")
        for anchor, error in c["failures"]:
            lines.append(f"    {anchor}: {error}")
        if c["failures_not_shown"]:
            lines.append(f"    ... and {c['failures_not_shown']} more (--failures all lists every one)")
    lines.append(f"failures: {report['failing']} in all" if report["failing"] else "failures: none")
    for name, held in report.get("held", {}).items():
        lines.append(f"held by the deletion guard in run {held['run']}: {name}: {held['count']} objects, "
                     f"{held['approved']} approved (`provision approve FILE {held['run']} --anchor ANCHOR` releases one; "
                     "the next run sends what is approved)")
        for h in held["objects"]:
            lines.append(f"    {h['anchor']}: {h['action']}" + (f" ({h['name']})" if h["name"] else "")
                         + ("  approved" if h["approved"] else ""))
    lines.append("last runs:")
    for run in report["runs"]:
        lines += _run_lines(run, list(report["object_types"]))
    if not report["runs"]:
        lines.append("  none yet")
    return "\n".join(lines)


def _run_lines(run: dict[str, Any], order: list[str]) -> list[str]:
    """One recent run: when, kind, status, id and duration; then its counts and errors per type
    (in the manifest's ``order``)."""
    took = run.get("duration_seconds")
    head = f"  {run['started']}  {run['kind']:4}  {run['status']:8} {run['run_id']}"
    if took is not None:
        head += f"  {_duration_text(took)}"
    elif run["status"] == "running":
        head += "  (still running, or killed: the next run takes its lock over)"
    elif run["status"] == "abandoned":
        head += "  (killed or crashed; the next run settled what it left in doubt)"
    lines = [head]
    if run.get("manifest_hash"):
        commit = run.get("manifest_commit")
        lines.append(f"      manifest {run['manifest_hash'][:12]}" + (
            f" at commit {commit.rstrip('+')[:12]}" + (" with changes not committed" if commit.endswith("+") else "")
            if commit else " (not in a git repository)"))
    summary = run.get("summary") or {}
    plan = run["kind"] == "plan"
    counts = summary.get("object_types") or {}
    for name in sorted(counts, key=lambda n: (order.index(n) if n in order else len(order), n)):
        get = counts[name].get
        if plan:
            line = (f"      {name}: {get('imported', 0)} imported; would add {get('added', 0)}, update "
                    f"{get('updated', 0)}, disable {get('disabled', 0)}, delete {get('deleted', 0)}; "
                    f"{get('unchanged', 0)} unchanged, {get('failed', 0)} failed")
        else:
            line = (f"      {name}: {get('imported', 0)} imported, {get('added', 0)} added, {get('updated', 0)} "
                    f"updated, {get('renamed', 0)} renamed, {get('disabled', 0)} disabled, {get('deleted', 0)} "
                    f"deleted, {get('unchanged', 0)} unchanged, {get('failed', 0)} failed")
        if get("recovered"):
            line += f", {get('recovered')} recovered"
        lines.append(line)
        if get("guard"):
            lines.append(f"        stopped by the deletion guard: {get('guard')}")
        if get("error"):
            lines.append(f"        error: {get('error')}")
    if summary.get("error"):
        lines.append(f"      error: {summary['error']}")
    return lines


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def cmd_release(args: argparse.Namespace) -> int:
    from runner.engine.quarantine import release

    pipeline, lifted = release(args.file)
    if _json(args):
        print(secrets.redact(json.dumps({"pipeline": pipeline, "released": lifted is not None,
                                         "was": None if lifted is None else lifted.describe()}, ensure_ascii=False)))
        return EXIT_OK
    if lifted is None:
        print(f"pipeline {pipeline} is not quarantined; nothing to release")
    else:
        print(secrets.redact(f"pipeline {pipeline} released: it was {lifted.describe()}. "
                             "The next run goes ahead without a probe"))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from runner.demo import main as demo

    return demo(args.demo_args)


def cmd_connectors(args: argparse.Namespace) -> int:
    from runner.connectors.describe import describe_all

    rows = describe_all()
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        print(f"{row['type']}  ({row['distribution']} {row['version']}, {row['class']})")
        if row.get("error"):
            print(f"    cannot load: {row['error']}")
            continue
        print(f"    {row['description']}")
        print(f"    capabilities: {', '.join(row['capabilities']) or 'read only'}")
        print(f"    operations: {', '.join(row['operations']) or 'none (source only)'}")
    return EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
    import shutil

    from runner.engine import schedule

    every = schedule.parse_every(args.every)
    here = Path.cwd()
    working_dir = (args.working_dir or here).absolute()
    beside = Path(sys.executable).parent / "provision"  # the venv's script; not resolved: a venv's python is a link
    command = args.executable or schedule.default_command(
        beside if os.access(beside, os.X_OK) else shutil.which("provision"), here, working_dir)
    options = schedule.Options(every=every, command=command, working_dir=working_dir,
                               here=here, time_limit=schedule.time_limit(args.time_limit, every), user=args.user,
                               name=args.name, image=args.image, env_file=args.env_file, cron_log=args.cron_log,
                               state_url_env=args.state_url_env)
    generated = schedule.generate(args.file, args.scheduler, options, os.environ)
    for warning in generated.warnings:
        print(f"provision: warning: {secrets.redact(warning)}", file=sys.stderr)
    written = schedule.write_files(generated, args.out) if args.out else []
    # not through secrets.redact: the files hold ${env:} references, never values, and redact() would
    # mask a reference that stands for a URL's password (the manifest in a ConfigMap must keep it)
    if args.output == "json":
        print(json.dumps({**generated.as_json(), "written": [str(p) for p in written]}, ensure_ascii=False))
    elif written:
        print("\n".join(f"wrote {p}" for p in written))
    else:
        print(generated.text(), end="")
    return EXIT_OK


def cmd_hook(args: argparse.Namespace) -> int:
    """Pre-commit's entry point. The secrets a manifest reads through ``${env:}`` are seldom set
    where a commit is made: validate does not count them as problems and says what it could not
    check without them; test needs them, as ``provision test`` does."""
    from runner.mapping.affected import concerned, has_tests, repository_files, without_unset_variables
    from runner.mapping.checks import load

    manifests = concerned(args.files, repository_files(Path(".")))
    if args.check == "test":
        tested = [m for m in manifests if has_tests(m)]
        return cmd_test(argparse.Namespace(**{**vars(args), "files": tested})) if tested else EXIT_OK
    status = EXIT_OK
    for file in manifests:
        try:
            problems = load(file) and []
        except ManifestError as exc:
            problems = exc.problems
        problems, unset = without_unset_variables(problems)
        for problem in problems:
            print(secrets.redact(str(problem)), file=sys.stderr)
        if problems:
            status = EXIT_INVALID
        elif unset:
            print(f"{file}: ok as far as it can be checked without {', '.join(unset)} (not set here; set them to "
                  "check what depends on their values)")
        else:
            print(f"{file}: ok")
    return status


SCHEMA_KINDS = ("manifest", "mapping", "mapping-tests")


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.manifest import schema

    name = {"manifest": schema.MANIFEST, "mapping": schema.MAPPING,
            "mapping-tests": schema.MAPPING_TESTS}[args.kind or "manifest"]
    if args.out is None:
        print(schema.schema_text(name), end="")
        return EXIT_OK
    # the shipped schemas refer to each other by file name (manifest -> mapping-tests.schema.json):
    # an editor resolves those beside FILE, so they are written there too
    beside = schema.with_references(name)[1:]
    if args.out.name in beside:
        return _error(args, f"--out {args.out}: that name is the file the {args.kind or 'manifest'} schema refers "
                            f"to; choose another name, e.g. {name}", EXIT_INVALID)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for written in schema.with_references(name):
        paths.append(args.out if written == name else args.out.parent / written)
        paths[-1].write_text(schema.schema_text(written), encoding="utf-8")
    print(json.dumps({"written": [str(p) for p in paths]}) if _json(args) else "\n".join(f"wrote {p}" for p in paths))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
