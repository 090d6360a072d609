"""Errors named for what the caller should do with them.

User errors (a broken manifest, a held lock, an unreachable server) are ProvisionError
subclasses: the CLI prints their message and maps them to an exit code, never a traceback.
Connector errors live in ``runner.connectors.base`` because connectors must not import the
engine; this module imports them so callers have one place to look.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem in a manifest, located as precisely as we can."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path or '(top)'}: {self.message}"


class ProvisionError(Exception):
    """A user-facing error: the message says what went wrong and what to do."""

    exit_code = 1


class ManifestError(ProvisionError):
    """The manifest (or a file it includes) is invalid. Nothing ran."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(ProvisionError):
    """The command line asked for something that does not exist (exit 2)."""

    exit_code = 2


class StoppedError(ProvisionError):
    """The run was stopped before changing anything: the lock is held, or a safety rule tripped."""

    exit_code = 3


class StateError(ProvisionError):
    """The state store cannot be opened or is from an incompatible version."""

    exit_code = 2


class Interrupted(ProvisionError):
    """SIGINT or SIGTERM: the run recorded what was in flight and stopped (exit 128 + signal)."""

    def __init__(self, signum: int):
        import signal as _signal
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {_signal.Signals(signum).name}: what was sent is recorded; "
                         "the next run carries on from here")
