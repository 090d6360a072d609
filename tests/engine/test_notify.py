"""notify: alerts reach a real SMTP server (STARTTLS, login) and an HTTP receiver once per episode."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from servers.receivers import running

from runner import sampledata


@pytest.fixture(scope="module")
def receivers(tmp_path_factory):
    with running(tmp_path_factory.mktemp("receivers")) as found:
        yield found


@pytest.fixture
def alerting(quickstart_copy: Path, receivers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    requests.post(f"{receivers['url']}/_test/reset", timeout=5).raise_for_status()
    monkeypatch.setenv("SMTP_PASSWORD", receivers["password"])
    monkeypatch.setenv("ALERT_HOOK", f"{receivers['url']}/hooks/iam")
    text = quickstart_copy.read_text()
    quickstart_copy.write_text(text + f"""
notify:
  webhook: {{url: "${{env:ALERT_HOOK}}"}}
  email:
    host: 127.0.0.1
    port: {receivers['smtp_port']}
    ca_file: "{receivers['ca']}"
    user: {receivers['user']}
    password: "${{env:SMTP_PASSWORD}}"
    from: provision@example.org
    to: [iam-team@example.org]
  when: {{failed_share: 50%}}
""")
    sampledata.make(tmp_path / "data", 200, 20, 1)
    return quickstart_copy


def seen(receivers) -> dict:
    return requests.get(f"{receivers['url']}/_test/dump", timeout=5).json()


def cut(data: Path, keep_from: int) -> None:
    lines = (data / "people.csv").read_text().splitlines(keepends=True)
    (data / "people.csv").write_text(lines[0] + "".join(lines[keep_from:]))


def test_a_held_deletion_is_announced_once_per_episode(alerting: Path, receivers, provision, tmp_path: Path):
    data = tmp_path / "data"
    full = (data / "people.csv").read_text()
    assert provision("run", alerting).code == 0
    assert seen(receivers) == {"mail": [], "webhook": []}

    cut(data, 31)
    outputs = [provision("run", alerting), provision("run", alerting)]  # the same episode twice
    assert [r.code for r in outputs] == [3, 3]
    got = seen(receivers)
    assert len(got["webhook"]) == 1 and len(got["mail"]) == 1, got
    hook, mail = got["webhook"][0], got["mail"][0]
    assert hook["path"] == "/hooks/iam" and hook["body"]["alert"] == "deletion_guard"
    assert "the deletion guard holds changes" in hook["body"]["text"] and "quickstart" in hook["body"]["text"]
    assert mail["tls"] and mail["login"] == receivers["user"] and mail["to"] == ["iam-team@example.org"]
    assert "the deletion guard holds changes" in mail["subject"]
    assert all(receivers["password"] not in r.out + r.err for r in outputs)

    (data / "people.csv").write_text(full)  # the file is whole again: the episode ends
    assert provision("run", alerting).code == 0
    cut(data, 31)  # and a new one starts
    assert provision("run", alerting).code == 3
    got = seen(receivers)
    assert len(got["webhook"]) == 2 and len(got["mail"]) == 2


def test_an_alert_the_receiver_missed_is_sent_by_the_next_run(alerting: Path, receivers, provision, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    assert provision("run", alerting).code == 0
    cut(tmp_path / "data", 31)
    monkeypatch.setenv("ALERT_HOOK", f"{receivers['url']}/fail")
    missed = provision("run", alerting)
    assert missed.code == 3 and "the webhook answered HTTP 500; the next run tries again" in missed.err
    monkeypatch.setenv("ALERT_HOOK", f"{receivers['url']}/hooks/iam")
    assert provision("run", alerting).code == 3
    got = seen(receivers)
    assert len(got["webhook"]) == 1 and got["webhook"][0]["body"]["alert"] == "deletion_guard"
    assert len(got["mail"]) == 1  # the mail went out with the first attempt: not again


def test_a_quarantine_is_announced_once_and_shows_in_metrics_and_the_report(alerting: Path, receivers, provision,
                                                                           tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    text = alerting.read_text()
    start = text.index("state: ")  # the state stays put while the target moves away
    alerting.write_text(text[:start] + f'state: "sqlite:///{tmp_path / "state.db"}"' + text[text.index("\n", start):])
    assert provision("run", alerting).code == 0
    broken = tmp_path / "moved"
    broken.mkdir()  # the target database path names a folder now: it cannot be opened
    monkeypatch.setenv("PROVISION_TARGET", str(broken))
    metrics = tmp_path / "provision.prom"
    codes = [provision("run", alerting, "--metrics-file", metrics).code for _ in range(5)]
    assert codes == [1, 1, 1, 3, 3]  # quarantined after the third; later runs stop at the probe
    got = seen(receivers)
    quarantined = [h for h in got["webhook"] if h["body"]["alert"] == "quarantined"]
    assert len(quarantined) == 1 and "quarantined" in quarantined[0]["body"]["text"]
    assert sum("quarantined" in m["subject"] for m in got["mail"]) == 1
    assert 'provision_quarantined{pipeline="quickstart"} 1' in metrics.read_text()
    page = tmp_path / "report.html"
    assert provision("report", alerting, "--html", page).code == 0
    assert "QUARANTINED" in page.read_text()
