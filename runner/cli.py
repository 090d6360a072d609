"""Command line: parse arguments, call the engine, print, map outcomes to exit codes.

Exit codes: 0 all good, 1 some objects failed, 2 invalid manifest or usage, 3 stopped (the
pipeline's lock is held, or a safety rule tripped), 130 / 143 interrupted by SIGINT / SIGTERM
(what was in flight is recorded; the next run carries on).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner import __version__, secrets
from runner.errors import ManifestError, ProvisionError, StoppedError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_STOPPED = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "verbose", False))
    try:
        return args.func(args)
    except ManifestError as exc:
        for problem in exc.problems:
            print(secrets.redact(str(problem)), file=sys.stderr)
        return EXIT_INVALID
    except StoppedError as exc:
        if getattr(args, "output", "text") == "json":
            print(json.dumps({"pipeline": None, "run_id": None, "status": "stopped",
                              "error": secrets.redact(str(exc))}))
        print(f"provision: stopped: {secrets.redact(str(exc))}", file=sys.stderr)
        return EXIT_STOPPED
    except ProvisionError as exc:
        print(f"provision: {secrets.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("provision: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        print(f"provision: internal error: {type(exc).__name__}: {secrets.redact(str(exc))}", file=sys.stderr)
        if os.environ.get("PROVISION_DEBUG"):
            print(secrets.redact(traceback.format_exc()), file=sys.stderr)
        else:
            print("provision: set PROVISION_DEBUG=1 for the traceback, and please report it", file=sys.stderr)
        return EXIT_FAILED


def _setup_logging(verbose: bool) -> None:
    """Messages of the 'provision' logger go to stderr, redacted; stdout stays for results."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("provision: %(message)s"))
    handler.addFilter(_RedactFilter())
    logger = logging.getLogger("provision")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = secrets.redact(record.getMessage())
        record.args = ()
        return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provision", description="Declarative identity provisioning.")
    parser.add_argument("--version", action="version", version=f"provision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check manifests; one line per problem")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_validate)

    for name, helptext in (("run", "import, compute and export"),
                           ("plan", "import and compute; print what run would export, change nothing in targets")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", type=Path, metavar="FILE")
        p.add_argument("--output", choices=("text", "json"), default="text")
        p.add_argument("--object-type", action="append", default=[], metavar="NAME",
                       help="only this object type (repeatable)")
        p.add_argument("--no-import", action="store_true",
                       help="skip reading sources; compute from the state store (e.g. after a mapping change)")
        p.add_argument("--log-file", metavar="PATH", help="append the provisioning log (JSON lines) here")
        p.add_argument("--full", action="store_true", help="read sources whole, ignoring delta watermarks")
        p.add_argument("--full-export", action="store_true",
                       help="re-send every in-scope object's mapped attributes (a target that lost data or drifted)")
        p.add_argument("--partition", metavar="NAME", help="import only this source partition")
        p.add_argument("--allow-deletes", metavar="N|all", type=_allowance,
                       help="let this run delete or disable up to N objects per type (all: any number), past "
                            "the deletion guard (safety.max_deletes)")
        p.add_argument("-v", "--verbose", action="store_true", help="progress messages on stderr")
        p.set_defaults(func=cmd_run, plan=name == "plan")

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

    p = sub.add_parser("status", help="last runs, object counts and failures")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("connectors", help="installed connectors, their versions and capabilities")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_connectors)

    p = sub.add_parser("schema", help="print the manifest JSON Schema (for editors)")
    p.add_argument("--mapping", action="store_true", help="the mapping-file schema instead")
    p.add_argument("--mapping-tests", action="store_true", help="the mapping-tests file schema instead")
    p.set_defaults(func=cmd_schema)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.manifest import load

    status = EXIT_OK
    for file in args.files:
        try:
            load(file)
        except ManifestError as exc:
            for problem in exc.problems:
                print(secrets.redact(str(problem)), file=sys.stderr)
            status = EXIT_INVALID
        else:
            print(f"{file}: ok")
    return status


def cmd_run(args: argparse.Namespace) -> int:
    from runner.engine.context import RunOptions
    from runner.engine.run import PlanItem, execute

    options = RunOptions(plan=args.plan, object_types=tuple(args.object_type), no_import=args.no_import,
                         log_file=args.log_file, full_import=args.full, full_export=args.full_export,
                         partition=args.partition, stop=None if args.plan else _stop_on_signals(),
                         allow_deletes=args.allow_deletes)
    items: list[PlanItem] = []
    more = 0

    def on_item(item: PlanItem) -> None:
        nonlocal more
        if len(items) < PLAN_ITEMS_SHOWN:
            items.append(item)
        else:
            more += 1

    summary = execute(args.file, options, on_item if args.plan else None)
    if args.output == "json":
        out = summary.as_json()
        if args.plan:
            out["changes"] = [vars(i) for i in items]
            out["changes_not_shown"] = more
        print(secrets.redact(json.dumps(out, ensure_ascii=False, default=str)))
        return summary.exit_code
    print(_summary_text(summary, args.plan))  # counts first, then each object, as terraform plan does
    for item in items:
        print(secrets.redact(_plan_line(item)))
    if more:
        print(f"... and {more} more (see --output json, or narrow with --object-type)")
    return summary.exit_code


PLAN_ITEMS_SHOWN = 10000


def _allowance(text: str) -> int:
    if text == "all":
        return -1
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError("a number of objects, or all")


def _stop_on_signals() -> Any:
    """SIGINT and SIGTERM ask the run to stop at the next safe point (the round in flight is
    recorded first); a second one stops it at once, which is still safe (see docs/reliability)."""
    import signal

    from runner.engine.context import StopFlag

    flag = StopFlag()

    def ask(signum: int, _frame: Any) -> None:
        flag.set(signum)
        print(f"provision: {signal.Signals(signum).name}: finishing what is in flight, then stopping "
              "(again to stop at once)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, ask)
    signal.signal(signal.SIGTERM, ask)
    return flag


_SYMBOL = {"add": "+", "update": "~", "disable": "!", "delete": "-", "rename": ">", "replace": "±"}


def _plan_line(item: Any) -> str:
    head = f"{_SYMBOL.get(item.action, '?')} {item.object_type} {item.anchor}: {item.action}"
    if item.error:
        head += f"  (retrying after: {item.error})"
    from runner.report import change_lines

    return "\n".join([head] + [f"    {line}" for line in change_lines(item.changes)])


def _summary_text(summary: Any, plan: bool) -> str:
    verb = "plan" if plan else "run"
    lines = [f"{verb} {summary.run_id} of {summary.pipeline}: {summary.status}"]
    for name, c in summary.object_types.items():
        if plan:
            line = (f"  {name}: {c.imported} imported; would add {c.added}, update {c.updated}, "
                    f"disable {c.disabled}, delete {c.deleted}; {c.unchanged} unchanged, {c.failed} failed")
        else:
            line = (f"  {name}: {c.imported} imported, {c.added} added, {c.updated} updated, {c.renamed} renamed, "
                    f"{c.disabled} disabled, {c.deleted} deleted, {c.unchanged} unchanged, {c.failed} failed")
        if c.recovered:
            line += f"\n    {c.recovered} exports of an interrupted run were settled against the target first"
        if c.guard:
            line += f"\n    {'would be ' if plan else ''}stopped by the deletion guard: {c.guard}"
        if c.error:
            line += f"\n    stopped: {c.error}"
        lines.append(line)
    if summary.status == "partial":
        lines.append("some objects failed: see `provision status` or the provisioning log for why")
    return secrets.redact("\n".join(lines))


def cmd_test(args: argparse.Namespace) -> int:
    from runner.mapping.testing import load_suite, run_suite

    status = EXIT_OK
    for file in args.files:
        try:
            suite = load_suite(file)
        except ManifestError as exc:
            for problem in exc.problems:
                print(secrets.redact(str(problem)), file=sys.stderr)
            status = EXIT_INVALID
            continue
        if not suite.tests:
            print(f"provision: {file}: no mapping tests (add tests: to the manifest, or "
                  f"{file.stem}.mapping-tests.yaml beside it)", file=sys.stderr)
            status = EXIT_INVALID
            continue
        outcomes = run_suite(suite)
        for outcome in outcomes:
            mark = "ok  " if outcome.passed else "FAIL"
            lines = [f"{mark}  {outcome.test.label}  ({outcome.test.where})"]
            lines += [f"        {d}" for d in outcome.differences]
            print(secrets.redact("\n".join(lines)))
        failed = sum(not o.passed for o in outcomes)
        print(f"{file}: {len(outcomes)} tests, {len(outcomes) - failed} passed"
              + (f", {failed} failed" if failed else ""))
        if failed and status == EXIT_OK:
            status = EXIT_FAILED
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


def cmd_status(args: argparse.Namespace) -> int:
    from runner.engine.status import status

    report = status(args.file)
    if args.output == "json":
        print(secrets.redact(json.dumps(report, ensure_ascii=False, default=str)))
        return EXIT_OK
    lines = [f"pipeline {report['pipeline']} (state: {report['state']})"]
    if report["lock"]:
        lines.append(f"  running now: {report['lock']}")
    lines.append("object types:")
    for name, c in report["object_types"].items():
        lines.append(f"  {name}: {c['source_objects']} in source, {c['in_scope']} in scope, {c['linked']} in target, "
                     f"{c['pending']} pending ({c['in_doubt']} in doubt after an interrupted run), {c['failing']} failing")
        for anchor, error in c["failures"]:
            lines.append(f"    {anchor}: {error}")
    lines.append("last runs:")
    for run in report["runs"]:
        lines.append(f"  {run['started']}  {run['kind']:4}  {run['status']:8} {run['run_id']}")
    if not report["runs"]:
        lines.append("  none yet")
    print(secrets.redact("\n".join(lines)))
    return EXIT_OK


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


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.manifest import schema

    name = schema.MAPPING_TESTS if args.mapping_tests else schema.MAPPING if args.mapping else schema.MANIFEST
    print(schema.schema_text(name), end="")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
