"""provision schedule: a crontab line that runs the pipeline, systemd units systemd-analyze accepts,
a Kubernetes CronJob whose failure policy follows the exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import QUICKSTART, REPO

from runner import cli
from runner.engine import schedule
from runner.mapping.checks import load
from runner.state.opening import Mode, open_store

HR_TO_LDAP = REPO / "manifests" / "hr-to-ldap.yaml"
LDAP_VARIABLES = ("LDAP_URL", "LDAP_BIND_DN", "LDAP_PASSWORD", "LDAP_BASE_DN")
VENV_PROVISION = Path(sys.executable).parent / "provision"


def crontab_entry(text: str) -> tuple[list[str], str]:
    """The one line that is not a comment: its five time fields and the rest."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1, text
    fields = lines[0].split(" ", 5)
    return fields[:5], fields[5]


def unit(text: str) -> dict[str, list[str]]:
    """A unit file as section.key -> values (keys such as ReadWritePaths= may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def verify(*files: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: it comes with Debian's systemd package"
    return subprocess.run([tool, "verify", "--man=no", *map(str, files)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def no_ldap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine that writes the units has none of the pipeline's secrets."""
    for name in LDAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# ---- cron --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def in_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files are written from the repository's root, as a person would."""
    monkeypatch.chdir(REPO)


def test_crontab_line_runs_the_pipeline_and_the_lock_refuses_an_overlap(quickstart_env, provision, tmp_path):
    quickstart_env(20, 2)
    log = tmp_path / "cron.log"
    result = provision("schedule", QUICKSTART, "--cron", "--every", "*/15 * * * *", "--cron-log", log)
    assert result.code == 0, result.err
    when, command = crontab_entry(result.out)
    assert when == ["*/15", "*", "*", "*", "*"]
    assert command.startswith(f"cd {REPO} && timeout -k 60s 14m {VENV_PROVISION} run manifests/quickstart.yaml ")
    assert "--time-limit 12m" in command and command.endswith(f">> {log} 2>&1")
    assert "flock" not in command and "set -a" not in command  # every variable has a default

    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, log.read_text()
    assert "run " in log.read_text() and "of quickstart: ok" in log.read_text()

    store = open_store(load(QUICKSTART), Mode.WRITE)  # a run of this pipeline is going on (this process)
    try:
        store.runs.acquire_lock("quickstart", "a-long-run")
        refused = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
        assert refused.returncode == cli.EXIT_STOPPED
        assert "pipeline 'quickstart' is already running" in log.read_text()
        assert "a-long-run" in log.read_text()
    finally:
        store.runs.release_lock("quickstart", "a-long-run")
        store.close()


def test_cron_d_entry_names_the_user_and_reads_the_secrets_file(provision, no_ldap, tmp_path):
    result = provision("schedule", HR_TO_LDAP, "--cron", "--user", "provision", "--every", "daily",
                       "--working-dir", REPO, "--env-file", "/etc/provision/hr.env", "--out", tmp_path)
    assert result.code == 0, result.err
    assert result.out.strip() == f"wrote {tmp_path / 'provision-hr-to-ldap'}"  # /etc/cron.d skips names with a dot
    when, rest = crontab_entry((tmp_path / "provision-hr-to-ldap").read_text())
    user, command = rest.split(" ", 1)
    assert when == ["0", "0", "*", "*", "*"] and user == "provision"
    assert command.startswith(f"cd {REPO} && set -a && . /etc/provision/hr.env && set +a && timeout -k 60s 22h ")
    assert "run manifests/hr-to-ldap.yaml --time-limit 20h >> /var/log/provision/provision-hr-to-ldap.log 2>&1" \
        in command
    assert subprocess.run(["sh", "-n", "-c", command], capture_output=True, timeout=10).returncode == 0
    text = (tmp_path / "provision-hr-to-ldap").read_text()
    assert "LDAP_URL, LDAP_BIND_DN, LDAP_PASSWORD, LDAP_BASE_DN (required)" in text


# ---- systemd -----------------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", [QUICKSTART, HR_TO_LDAP], ids=["quickstart", "hr-to-ldap"])
def test_systemd_units_pass_systemd_analyze_verify(manifest, provision, no_ldap, tmp_path):
    out = tmp_path / "units"
    result = provision("schedule", manifest, "--systemd", "--working-dir", REPO, "--user", "provision",
                       "--out", out)
    assert result.code == 0, result.err
    name = f"provision-{manifest.stem}"
    service, timer = out / f"{name}.service", out / f"{name}.timer"
    assert sorted(p.name for p in out.iterdir()) == [service.name, timer.name]
    checked = verify(service, timer)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr  # warnings fail too

    s, t = unit(service.read_text()), unit(timer.read_text())
    assert s["Service.Type"] == ["oneshot"] and s["Service.User"] == ["provision"]
    assert s["Service.WorkingDirectory"] == [str(REPO)]
    assert s["Service.ExecStart"] == [f"{VENV_PROVISION} run manifests/{manifest.name} --time-limit 50m"]
    assert s["Service.TimeoutStartSec"] == ["55m"]  # RuntimeMaxSec= has no effect on a oneshot service
    assert "Service.RuntimeMaxSec" not in s and "Service.SuccessExitStatus" not in s
    assert s["Service.ProtectSystem"] == ["strict"]
    assert s["Service.NoNewPrivileges"] == ["yes"] and s["Service.PrivateTmp"] == ["yes"]
    assert s["Service.ReadWritePaths"] == [str(REPO / "manifests" / "out")]  # the SQLite state's folder
    assert t["Timer.OnCalendar"] == ["hourly"] and t["Timer.Persistent"] == ["true"]
    assert t["Timer.RandomizedDelaySec"] == ["5m"] and t["Install.WantedBy"] == ["timers.target"]
    if manifest == HR_TO_LDAP:  # the secrets are required: a missing file must stop the unit
        assert s["Service.EnvironmentFile"] == ["/etc/provision/provision-hr-to-ldap.env"]
    else:  # only variables with defaults: the file is optional
        assert s["Service.EnvironmentFile"] == ["-/etc/provision/provision-quickstart.env"]


def test_units_written_from_a_checkout_point_at_the_same_files_on_the_server(provision, no_ldap, tmp_path):
    result = provision("schedule", HR_TO_LDAP, "--systemd", "--working-dir", "/srv/provision", "--output", "json")
    assert result.code == 0, result.err
    s = unit(json.loads(result.out)["files"]["provision-hr-to-ldap.service"])
    assert s["Service.WorkingDirectory"] == ["/srv/provision"]
    assert s["Service.ExecStart"] == ["/srv/provision/.venv/bin/provision run manifests/hr-to-ldap.yaml "
                                      "--time-limit 50m"]
    assert s["Service.ReadWritePaths"] == ["/srv/provision/manifests/out"]

    spaced = provision("schedule", HR_TO_LDAP, "--systemd", "--working-dir", "/srv/identity 100% sync",
                       "--command", VENV_PROVISION, "--out", tmp_path)
    assert spaced.code == 0, spaced.err
    text = (tmp_path / "provision-hr-to-ldap.service").read_text()
    assert unit(text)["Service.ReadWritePaths"] == ['"/srv/identity 100%% sync/manifests/out"']
    checked = verify(tmp_path / "provision-hr-to-ldap.service", tmp_path / "provision-hr-to-ldap.timer")
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr


def test_systemd_without_a_time_limit_waits_for_the_run(provision, tmp_path):
    result = provision("schedule", QUICKSTART, "--systemd", "--time-limit", "none", "--every", "Mon..Fri *-*-* 06:30",
                       "--out", tmp_path)
    assert result.code == 0, result.err
    s = unit((tmp_path / "provision-quickstart.service").read_text())
    assert s["Service.TimeoutStartSec"] == ["infinity"] and "--time-limit" not in s["Service.ExecStart"][0]
    assert unit((tmp_path / "provision-quickstart.timer").read_text())["Timer.OnCalendar"] == ["Mon..Fri *-*-* 06:30"]
    checked = verify(tmp_path / "provision-quickstart.service", tmp_path / "provision-quickstart.timer")
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr


@pytest.mark.parametrize(("every", "calendar"), [
    ("15m", "*-*-* *:00/15:00"),
    ("2h", "*-*-* 00/2:00:00"),
    ("0 6 * * 1-5", "Mon..Fri *-*-* 06:00:00"),
    ("*/10 8-18 * * mon-fri", "Mon..Fri *-*-* 08..18:00/10:00"),
    ("30 2 1,15 * *", "*-*-01,15 02:30:00"),
    ("0 0 * jan,jul 0", "Sun *-01,07-* 00:00:00"),
    ("5,35 */3 * * *", "*-*-* 00/3:05,35:00"),
    ("0 12 */2 * */2", "Tue,Thu,Sat,Sun *-*-01/2 12:00:00"),  # both "*...": cron needs both to match
])
def test_every_says_the_same_moments_to_cron_and_to_systemd(every, calendar):
    parsed = schedule.parse_every(every)
    shown = subprocess.run(["systemd-analyze", "calendar", parsed.calendar], capture_output=True, text=True,
                           timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert f"Normalized form: {calendar}" in shown.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--cron", "--every", "45m"), "an interval must divide an hour"),
    (("--cron", "--every", "61 * * * *"), "minute '61' is not one of 0-59"),
    (("--cron", "--every", "Mon..Fri *-*-* 06:30"), "is for --systemd only"),
    (("--systemd", "--every", "0 9 1 * 1"), "cron reads as either one and systemd as both"),
    (("--systemd", "--every", "every hour"), "not a schedule"),
    (("--kubernetes",), "--kubernetes needs --image IMAGE"),
    (("--cron", "--time-limit", "soon"), "--time-limit 'soon'"),
    (("--kubernetes", "--image", "x", "--name", "Bad_Name"), "a CronJob's name is lower-case"),
])
def test_what_cannot_be_scheduled_is_refused_with_exit_2(args, message, provision):
    result = provision("schedule", QUICKSTART, *args)
    assert result.code == cli.EXIT_INVALID and message in result.err, result.err
    assert result.out == "" and "Traceback" not in result.err


def test_an_invalid_manifest_is_reported_as_validate_does(provision, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\nconnectors: {}\nobject_types: [\n")
    result = provision("schedule", broken, "--cron")
    assert result.code == cli.EXIT_INVALID and f"{broken}:" in result.err and result.out == ""


# ---- kubernetes --------------------------------------------------------------------------------


def test_cronjob_takes_secrets_from_a_secret_and_fails_without_retry_when_a_person_must_look(
        provision, no_ldap, monkeypatch):
    monkeypatch.setenv("LDAP_PASSWORD", "s3cret-on-this-machine")  # set here or not, it never appears
    result = provision("schedule", HR_TO_LDAP, "--kubernetes", "--image", "registry.example.org/provision:1",
                       "--user", "10001")
    assert result.code == 0, result.err
    assert "s3cret-on-this-machine" not in result.out + result.err
    assert "keeps its state in SQLite" in result.err and "PostgreSQL" in result.err
    configmap, cronjob = yaml.safe_load_all(result.out)

    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob"
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 * * * *" and spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 600
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1 and job["activeDeadlineSeconds"] == 55 * 60
    rules = job["podFailurePolicy"]["rules"]
    fail_job = [r["onExitCodes"]["values"] for r in rules if r["action"] == "FailJob"]
    assert fail_job == [[cli.EXIT_FAILED, cli.EXIT_INVALID, cli.EXIT_STOPPED]]  # retried: 4, the environment
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.org/provision:1"
    assert container["args"] == ["run", "manifests/hr-to-ldap.yaml", "--time-limit", "50m"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(refs) == {*LDAP_VARIABLES, "PROVISION_STATE", "PROVISION_DATA"}
    assert {r["name"] for r in refs.values()} == {"provision-hr-to-ldap-env"}
    assert all(refs[n]["key"] == n and "optional" not in refs[n] for n in LDAP_VARIABLES)
    assert refs["PROVISION_DATA"]["optional"] is True  # it has a default in the manifest
    assert "kubectl create secret generic provision-hr-to-ldap-env" in result.out

    # the manifest and its mapping files, laid out so that ../mappings/x.yaml still resolves
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] == "provision-hr-to-ldap-manifest"
    paths = {i["path"]: configmap["data"][i["key"]] for i in volume["configMap"]["items"]}
    assert paths == {p: (REPO / p).read_text() for p in ("manifests/hr-to-ldap.yaml",
                                                         "mappings/person-to-ldap-inetorgperson.yaml",
                                                         "mappings/group-to-ldap-groupofnames.yaml")}
    assert container["workingDir"] == container["volumeMounts"][0]["mountPath"]


def test_state_url_env_takes_the_state_store_from_the_secret(provision, quickstart_copy):
    manifest = quickstart_copy
    text = manifest.read_text()
    manifest.write_text(text.replace('state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"',
                                     'state: "${env:PROVISION_STATE_URL:-sqlite:///out/app.db.state}"'))
    result = provision("schedule", manifest, "--kubernetes", "--image", "provision:1",
                       "--state-url-env", "PROVISION_STATE_URL", "--time-limit", "none")
    assert result.code == 0, result.err
    assert "SQLite" not in result.err  # the Secret says where the state is
    _, cronjob = yaml.safe_load_all(result.out)
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert "activeDeadlineSeconds" not in job
    (container,) = job["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["PROVISION_STATE_URL"] == {"name": "provision-quickstart-env", "key": "PROVISION_STATE_URL"}

    plain = provision("schedule", QUICKSTART, "--kubernetes", "--image", "provision:1",
                      "--state-url-env", "PROVISION_STATE_URL")
    assert plain.code == cli.EXIT_INVALID
    assert 'write state: "${env:PROVISION_STATE_URL}"' in plain.err


def test_kubernetes_refuses_a_password_written_in_the_manifest(provision, quickstart_copy):
    manifest = quickstart_copy
    manifest.write_text(manifest.read_text().replace(
        'state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"',
        'state: "postgresql+psycopg://provision:hunter2-literal@127.0.0.1/provision"'))
    result = provision("schedule", manifest, "--kubernetes", "--image", "provision:1")
    assert result.code == cli.EXIT_INVALID and "state holds a password in the manifest itself" in result.err
    assert "hunter2-literal" not in result.out + result.err


def test_json_output_lists_the_files_and_the_variables(provision, no_ldap):
    result = provision("schedule", HR_TO_LDAP, "--systemd", "--output", "json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["pipeline"] == "hr-to-ldap" and out["format"] == "systemd" and out["written"] == []
    assert list(out["files"]) == ["provision-hr-to-ldap.service", "provision-hr-to-ldap.timer"]
    required = {v["name"] for v in out["environment"] if v["required"]}
    assert required == set(LDAP_VARIABLES)


def test_exit_codes_in_the_files_are_the_command_lines():
    assert (schedule.FAILED, schedule.INVALID, schedule.STOPPED, schedule.ENVIRONMENT) == \
        (cli.EXIT_FAILED, cli.EXIT_INVALID, cli.EXIT_STOPPED, cli.EXIT_ENVIRONMENT)
