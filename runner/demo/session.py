"""One demo from start to end, in the foreground: a temporary folder, the example's data and server
in it, the ``export`` lines printed, then a wait for SIGINT or SIGTERM (or, given a command, that
command run with the variables set); at the end every server is stopped by its PID and the folder is
removed, whatever happened in between.

The output is a shell script: comments (``#``) and ``export NAME=value`` lines, each value quoted for
the shell. Given a command, it goes to standard error instead, so the command's own output (``run
--output json``) stays clean on standard output.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from runner.demo.examples import EXAMPLES, Example, Running
from runner.errors import EXIT_FAILED, UsageError


class _Stop(BaseException):  # noqa: N818 - a signal, not an error
    """SIGINT or SIGTERM arrived: end the demo (a BaseException, so no ``except Exception`` keeps it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def demo(example: Example, port: int | None, command: Sequence[str]) -> int:
    """Run ``example``'s demo; 0 when stopped by a signal, the command's exit code when given one."""
    if port is not None and not example.server:
        raise UsageError(f"--port: the {example.name} demo starts no server")
    folder = Path(tempfile.mkdtemp(prefix=f"provision-demo-{example.name}-"))
    running = Running()
    child: list[subprocess.Popen[bytes]] = []
    starting, pending, announced = [True], [], [False]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if starting[0]:  # a server half started would escape the clean-up: finish starting, then stop
            pending.append(signum)
        elif child and child[0].poll() is None:  # the command ends first, as it would on its own
            if signum == signal.SIGTERM:  # Ctrl-C reaches it from the terminal already
                child[0].send_signal(signum)
        else:
            raise _Stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    out = sys.stderr if command else sys.stdout
    try:
        try:
            example.start(folder, port, running)
            starting[0] = False
            if pending:
                return 0
            _print(out, example, running, folder, bool(command))
            announced[0] = True
            if command:
                return _run(command, running, child)
            return _wait(running)
        except _Stop:
            return 0
        finally:
            for s in previous:  # the clean-up is not cut short by a second Ctrl-C
                signal.signal(s, signal.SIG_IGN)
            if child and child[0].poll() is None:  # stopped before it could be waited for
                child[0].terminate()
                try:
                    child[0].wait(30)
                except subprocess.TimeoutExpired:
                    child[0].kill()
            stopped = _clean_up(running, folder)
            if announced[0]:
                print(f"# {stopped + ', ' if stopped else ''}removed {folder}", file=sys.stderr, flush=True)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _print(out: TextIO, example: Example, running: Running, folder: Path, with_command: bool) -> None:
    lines = [f"# provision demo {example.name}: {example.manifest}"
             + (f" with {example.server}" if example.server else "")]
    lines += [f"# {server.what}" for server in running.servers]
    lines += [f"# {note}" for note in running.notes]
    lines.append(f"# folder: {folder} (removed when the demo stops)")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in running.env.items()]
    if not with_command:
        lines += ["# In another shell, from the repository's root: paste the export lines above, then run",
                  f"#   {example.next_step}"]
        if example.command == "provision run":
            lines.append("# A second run changes nothing.")
            if "PROVISION_DATA" in running.env:
                lines += ["# Change the HR data (hires, leavers, moves) and run again:",
                          '#   python -m runner.sampledata mutate --out "$PROVISION_DATA"']
        endings = [server.ending for server in running.servers] + ["removes the folder"]
        lines.append(f"# Ctrl-C (or SIGTERM) here {', '.join(endings[:-1]) + ' and ' if endings[:-1] else ''}"
                     f"{endings[-1]}.")
    print("\n".join(lines), file=out, flush=True)


def _wait(running: Running) -> int:
    """Until a signal ends the demo (via :class:`_Stop`), or a server dies on its own (exit 1)."""
    while True:
        time.sleep(1)
        for server in running.servers:
            if not server.alive():
                tail = ""
                if server.log is not None and server.log.exists():
                    tail = ": " + server.log.read_text(errors="replace")[-1500:].strip()
                print(f"provision demo: {server.what} exited on its own{tail}", file=sys.stderr, flush=True)
                return EXIT_FAILED


def _run(command: Sequence[str], running: Running, child: list[subprocess.Popen[bytes]]) -> int:
    """``command`` with the demo's variables in its environment; its exit code (128 + N, as a shell
    says it, when signal N ended it)."""
    try:
        child.append(subprocess.Popen(list(command), env={**os.environ, **running.env}))
    except OSError as exc:
        raise UsageError(f"cannot run {shlex.join(command)}: {exc.strerror or exc}") from None
    code = child[0].wait()
    return 128 - code if code < 0 else code


def _clean_up(running: Running, folder: Path) -> str:
    """Stop every server (the last started first) and remove the folder; what was stopped, for a person."""
    stopped = []
    for server in reversed(running.servers):
        try:
            server.stop()
            stopped.append(server.done)
        except Exception as exc:  # noqa: BLE001 - the others are stopped and the folder removed all the same
            print(f"provision demo: stopping {server.what} failed: {exc}", file=sys.stderr, flush=True)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder)
    return ", ".join(stopped)


def listing() -> str:
    """The demos, one a line: name, what it starts, the manifest it runs."""
    width = max(len(e.name) for e in EXAMPLES)
    rows = [f"  {e.name:<{width}}  {e.manifest:<32}  {e.server or '(no server: files only)'}" for e in EXAMPLES]
    return "\n".join(["provision demo NAME: a throwaway server for an example, in the foreground (docs/examples.md)",
                      *rows])
