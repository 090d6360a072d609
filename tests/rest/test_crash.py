"""Kill tests against the real json-server: a run SIGKILLed right after the API confirmed its Nth
write (creates, group member updates, disables, deletes; four threads at once) converges on the
next run. The API then holds exactly what a run never killed makes, no record twice, and a third
run changes nothing. Creates whose answer the kill lost are found by externalId and adopted."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from faults.killed import converges as settles
from faults.killed import killed_run, spread
from servers.jsonserver import JsonServer

from runner import sampledata

from .world import api_state, env_for, hr_manifest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The clean outcome of a first run and of a run after the HR data changed, on a server of its own."""
    tmp = tmp_path_factory.mktemp("rest-crash")
    server = JsonServer.start(tmp / "clean-server")
    try:
        manifest = hr_manifest(tmp, people=50, groups=5)
        data = tmp / "manifests" / "data"
        before = tmp / "before"
        shutil.copytree(data, before)
        first = killed_run(manifest, env_for(server.url, tmp), 0)
        assert first.returncode == 0, first.stderr
        commits = int(re.search(r"commits: (\d+)", first.stderr).group(1))
        clean_before = api_state(server.dump())
        changes = sampledata.mutate(data, 9, 20.0)
        second = killed_run(manifest, env_for(server.url, tmp), 0)
        assert second.returncode == 0, second.stderr
        counts = json.loads(second.stdout)["object_types"]
        yield {"tmp": tmp, "manifest": manifest, "before": before, "after": data, "commits": commits,
               "delta_commits": int(re.search(r"commits: (\d+)", second.stderr).group(1)), "changes": changes,
               "counts": counts, "clean_before": clean_before, "clean_after": api_state(server.dump())}
    finally:
        server.stop()


def converges(provision, monkeypatch, world, url: str, state: str, data, expected) -> dict:
    env = env_for(url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(data)}
    return settles(provision, monkeypatch, world["manifest"], env, lambda: api_state(world["server"].dump()), expected)


def test_the_scenario_has_many_kill_points_of_every_kind(world):
    assert world["commits"] >= 40 and world["delta_commits"] >= 10
    user, group = world["counts"]["user"], world["counts"]["group"]
    assert user["disabled"] and user["deleted"] and user["added"] and user["updated"], user
    assert group["updated"], "the change run changes memberships"


@pytest.fixture
def fresh(world, tmp_path):
    server = JsonServer.start(tmp_path / "server")
    world["server"] = server
    yield server
    server.stop()


@pytest.mark.parametrize("nth", range(5))
def test_killed_during_first_contact_converges(world, fresh, provision, monkeypatch, nth):
    point = spread(world["commits"], 5)[nth]
    state = str(world["tmp"] / f"first-{nth}.db")
    env = env_for(fresh.url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["before"])}
    killed = killed_run(world["manifest"], env, point)
    assert killed.returncode == -9, killed.stderr
    summary = converges(provision, monkeypatch, world, fresh.url, state, world["before"], world["clean_before"])
    assert any(c.get("recovered") for c in summary["object_types"].values()), summary


@pytest.mark.parametrize("nth", range(4))
def test_killed_while_following_changes_converges(world, fresh, provision, monkeypatch, nth):
    """An API provisioned from the data before, then a run on the changed data (hires, terminations,
    removals, membership changes) killed part way."""
    state = str(world["tmp"] / f"change-{nth}.db")
    for k, v in (env_for(fresh.url, world["tmp"]) | {"PROVISION_STATE": state,
                                                      "PROVISION_DATA": str(world["before"])}).items():
        monkeypatch.setenv(k, v)
    assert provision("run", world["manifest"]).code == 0
    point = spread(world["delta_commits"], 4)[nth]
    env = env_for(fresh.url, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["after"])}
    killed = killed_run(world["manifest"], env, point)
    assert killed.returncode == -9, killed.stderr
    converges(provision, monkeypatch, world, fresh.url, state, world["after"], world["clean_after"])
