"""Running the examples as their instructions say leaves the repository's files as they were.

A user clones the repository and runs each example that needs no server, in place, with the
commands its manifest's header gives (and the README's quick start): sample data, a first run, a
change in HR, a second run. Afterwards every file git tracks under manifests/ and mappings/ is
byte for byte what it was, and whatever the examples wrote is ignored by git (``manifests/out/``),
so ``git status`` shows nothing new. The commands are read from the headers, so an instruction
added there is run too.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

EXAMPLES = ("quickstart", "hr-sql-to-sql", "hr-sql-watermark")  # the ones that need no server
# a header line that is a command: "#   provision run manifests/x.yaml   # what it does"
COMMAND = re.compile(r"^#\s+((?:python -m runner\.sampledata|provision run) [^#]*?)\s*(?:#.*)?$")


def header_commands(example: str) -> list[str]:
    """The commands in the comment lines at the top of ``manifests/<example>.yaml``."""
    lines = (REPO / "manifests" / f"{example}.yaml").read_text().splitlines()
    header = [line for line in lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]]
    return [m.group(1) for line in header if (m := COMMAND.match(line))]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


# What the examples live in; the rest of the work tree may be edited by others while this runs.
WATCHED = ("manifests", "mappings")


def snapshot() -> tuple[dict[str, bytes], set[str]]:
    """The content of each tracked file under WATCHED (as it is in the work tree now, local edits
    included), and the untracked files there that git does not ignore."""
    tracked = {name: (REPO / name).read_bytes() for name in git("ls-files", "-z", *WATCHED).split("\0")
               if name and (REPO / name).is_file()}
    return tracked, set(filter(None, git("ls-files", "-z", "--others", "--exclude-standard", *WATCHED).split("\0")))


def run(command: str) -> None:
    """One command as a user types it at the repository's root, in a shell without the examples'
    variables set (so the defaults apply)."""
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "provision":
        argv[0] = str(Path(sys.executable).parent / "provision")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PROVISION_") and k not in ("HR_DB_URL", "TARGET_DB_URL")}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_every_example_gives_its_commands():
    for example in EXAMPLES:
        commands = header_commands(example)
        assert any(c.startswith(f"provision run manifests/{example}.yaml") for c in commands), (example, commands)


@pytest.mark.parametrize("example", EXAMPLES)
def test_running_an_example_in_place_changes_no_file_of_the_repository(example: str):
    commands = header_commands(example)
    if example == "quickstart":  # the README's quick start: run it, then again (everything unchanged)
        commands += ["provision run manifests/quickstart.yaml"]
    before = snapshot()
    try:
        for command in commands:
            run(command)
        tracked, untracked = snapshot()
    finally:  # the committed sample data is put back if an instruction rewrote it, so a failure costs nothing
        for name, content in before[0].items():
            if name.startswith("manifests/data/") and (REPO / name).read_bytes() != content:
                (REPO / name).write_bytes(content)
    changed = sorted(name for name, content in tracked.items() if before[0].get(name) != content)
    assert not changed, f"running {example} as its header says rewrote files git tracks: {changed}"
    added = sorted(untracked - before[1])
    assert not added, f"running {example} left files git does not ignore: {added}"
