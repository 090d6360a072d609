"""-v and -q mean the same on every command; -q leaves results on stdout and errors on stderr."""

from __future__ import annotations

from conftest import QUICKSTART

from runner import cli


def test_every_command_takes_verbose_and_quiet():
    parser = cli._parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        options = {o for action in command._actions for o in action.option_strings}
        assert {"-v", "--verbose", "-q", "--quiet"} <= options, name


def test_quiet_keeps_results_and_errors(quickstart_env, provision):
    quickstart_env(20, 2)
    assert provision("run", QUICKSTART, "-q").code == 0
    status = provision("status", QUICKSTART, "-q")
    assert status.code == 0 and "pipeline quickstart" in status.out and status.err == ""
    missing = provision("logs", QUICKSTART, "-q", "--object-type", "nope")
    assert missing.code == 2 and "no object type 'nope'" in missing.err
