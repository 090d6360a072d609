"""Kill tests against the real scim2-server: a run SIGKILLed right after the server confirmed its
Nth write (adds, member PATCHes, disables, deletes; four threads at once) converges on the next
run: the tenant then holds exactly what a run never killed makes, nothing twice, and a third run
changes nothing. Adds whose answer the kill lost are found by externalId and adopted."""

from __future__ import annotations

import re
import shutil

import pytest
from faults.killed import converges as settles
from faults.killed import killed_run, spread

from runner import sampledata

from .conftest import env_for, hr_manifest
from .world import tenant_state


@pytest.fixture(scope="module")
def world(scim, tmp_path_factory):
    """The clean outcome of a first run and of a run after the HR data changed, on tenants of their own."""
    tmp = tmp_path_factory.mktemp("scim-crash")
    clean = scim.tenant()
    manifest = hr_manifest(tmp, clean, people=50, groups=5)
    data = tmp / "manifests" / "data"
    before = tmp / "before"
    shutil.copytree(data, before)
    first = killed_run(manifest, env_for(clean, tmp), 0)
    assert first.returncode == 0, first.stderr
    commits = int(re.search(r"commits: (\d+)", first.stderr).group(1))
    clean_before = tenant_state(clean)
    shutil.copy(tmp / "state.db", tmp / "state-before.db")
    sampledata.mutate(data, 9, 20.0)
    second = killed_run(manifest, env_for(clean, tmp), 0)
    assert second.returncode == 0, second.stderr
    return {"tmp": tmp, "manifest": manifest, "before": before, "after": data, "commits": commits,
            "delta_commits": int(re.search(r"commits: (\d+)", second.stderr).group(1)),
            "clean_before": clean_before, "clean_after": tenant_state(clean)}


def converges(provision, monkeypatch, world, url: str, state: str, data, expected) -> dict:
    env = env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(data)}
    return settles(provision, monkeypatch, world["manifest"], env, lambda: tenant_state(url), expected)


def test_the_scenario_has_many_kill_points(world):
    assert world["commits"] >= 40 and world["delta_commits"] >= 10


@pytest.mark.parametrize("nth", range(5))
def test_killed_during_first_contact_converges(world, scim, provision, monkeypatch, nth):
    point = spread(world["commits"], 5)[nth]
    url, state = scim.tenant(), str(world["tmp"] / f"first-{nth}.db")
    env = env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["before"])}
    killed = killed_run(world["manifest"], env, point)
    assert killed.returncode == -9, killed.stderr
    summary = converges(provision, monkeypatch, world, url, state, world["before"], world["clean_before"])
    assert any(c.get("recovered") for c in summary["object_types"].values()), summary


@pytest.mark.parametrize("nth", range(3))
def test_killed_while_following_changes_converges(world, scim, provision, monkeypatch, nth):
    """A tenant provisioned from the data before, then a run on the changed data killed part way."""
    url, state = scim.tenant(), str(world["tmp"] / f"change-{nth}.db")
    for k, v in (env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["before"])}).items():
        monkeypatch.setenv(k, v)
    assert provision("run", world["manifest"]).code == 0
    point = spread(world["delta_commits"], 3)[nth]
    env = env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["after"])}
    killed = killed_run(world["manifest"], env, point)
    assert killed.returncode == -9, killed.stderr
    converges(provision, monkeypatch, world, url, state, world["after"], world["clean_after"])


@pytest.mark.parametrize("nth", range(4))
def test_killed_while_applying_a_plan_converges(world, scim, provision, monkeypatch, nth):
    """``provision apply`` is the export of a run: killed part way, the next run settles what it
    left in doubt and finishes the job, nothing twice."""
    url, state = scim.tenant(), str(world["tmp"] / f"apply-{nth}.db")
    for k, v in (env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["before"])}).items():
        monkeypatch.setenv(k, v)
    assert provision("run", world["manifest"]).code == 0
    monkeypatch.setenv("PROVISION_DATA", str(world["after"]))
    plan = world["tmp"] / f"apply-{nth}.plan"
    assert provision("plan", world["manifest"], "--out", plan).code == 0
    point = spread(world["delta_commits"], 4)[nth]
    env = env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["after"])}
    killed = killed_run(plan, env, point, command=("apply",))
    assert killed.returncode == -9, killed.stderr
    converges(provision, monkeypatch, world, url, state, world["after"], world["clean_after"])
