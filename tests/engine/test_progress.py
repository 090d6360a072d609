"""What a run shows while it works: JSON lines for log collectors, live bars on a terminal, nothing with -q."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from conftest import QUICKSTART


def test_json_lines_per_pass_with_the_counts(quickstart_env, provision):
    quickstart_env(200, 20)
    result = provision("run", QUICKSTART, "--log-format", "json")
    assert result.code == 0
    lines = [json.loads(line) for line in result.err.splitlines()]
    assert lines and all(line["event"] == "progress" for line in lines)
    ends = {(line["object_type"], line["phase"]): line for line in lines if line["finished"]}
    assert ends[("user", "import")]["done"] == 200 and ends[("group", "import")]["done"] == 20
    assert ends[("user", "compute")]["done"] == 200
    assert ends[("user", "export")]["done"] == 190 and ends[("group", "export")]["done"] == 20
    assert all(line["seconds"] >= 0 for line in lines)


def test_quiet_shows_nothing_but_errors(quickstart_env, provision):
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART, "-q").err == ""
    lines = (data / "people.csv").read_text().splitlines(keepends=True)
    (data / "people.csv").write_text(lines[0] + "".join(lines[31:]))
    held = provision("run", QUICKSTART, "-q")
    assert held.code == 3 and "deletion guard" in held.err  # an error still shows


def test_live_bars_on_a_terminal(quickstart_env, tmp_path: Path):
    quickstart_env(300, 10)
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(QUICKSTART)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=terminal, env=dict(os.environ, COLUMNS="120"))
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        out, _ = process.communicate(timeout=120)
    finally:
        os.close(controller)
    assert process.returncode == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert "user" in text and "export" in text and "import" in text
    added = re.search(r"user: 300 imported, (\d+) added", out.decode()).group(1)  # the summary still on stdout
    assert f"{added}/{added}" in text, text[-2000:]  # the user export's count, as a finished bar
