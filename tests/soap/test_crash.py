"""Kill tests against the real spyne service: a run SIGKILLed right after the service confirmed its
Nth write (creates, member calls, setUserActive, deletes; four threads at once) converges on the
next run to what a run never killed makes, with no user or group twice, and a third run calls no
write. Creates whose answer the kill lost are found by getUser/getGroup and adopted."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from faults.killed import converges as settles
from faults.killed import killed_run, spread
from servers.soapservice import SoapService

from runner import sampledata

from .world import env_for, hr_manifest, service_state


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("soap-crash")
    service = SoapService.start(tmp / "clean-service")
    try:
        manifest = hr_manifest(tmp, people=60, groups=5)
        data = tmp / "manifests" / "data"
        before = tmp / "before"
        shutil.copytree(data, before)
        first = killed_run(manifest, env_for(service.wsdl, tmp), 0)
        assert first.returncode == 0, first.stderr
        clean_before = service_state(service.dump())
        sampledata.mutate(data, 9, 20.0)
        second = killed_run(manifest, env_for(service.wsdl, tmp), 0)
        assert second.returncode == 0, second.stderr
        yield {"tmp": tmp, "manifest": manifest, "before": before, "after": data,
               "commits": int(re.search(r"commits: (\d+)", first.stderr).group(1)),
               "delta_commits": int(re.search(r"commits: (\d+)", second.stderr).group(1)),
               "counts": json.loads(second.stdout)["object_types"],
               "clean_before": clean_before, "clean_after": service_state(service.dump())}
    finally:
        service.stop()


@pytest.fixture
def fresh(world, tmp_path):
    service = SoapService.start(tmp_path / "service")
    yield service
    service.stop()


def converges(provision, monkeypatch, world, service, state: str, data, expected) -> dict:
    env = env_for(service.wsdl, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(data)}
    return settles(provision, monkeypatch, world["manifest"], env, lambda: service_state(service.dump()), expected)


def test_the_scenario_has_many_kill_points_of_every_kind(world):
    assert world["commits"] >= 30 and world["delta_commits"] >= 8
    user, group = world["counts"]["user"], world["counts"]["group"]
    assert user["disabled"] and user["deleted"] and user["added"] and user["updated"], user
    assert group["updated"], "the change run changes memberships"


@pytest.mark.parametrize("nth", range(4))
def test_killed_during_first_contact_converges(world, fresh, provision, monkeypatch, nth):
    state = str(world["tmp"] / f"first-{nth}.db")
    env = env_for(fresh.wsdl, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["before"])}
    killed = killed_run(world["manifest"], env, spread(world["commits"], 4)[nth])
    assert killed.returncode == -9, killed.stderr
    summary = converges(provision, monkeypatch, world, fresh, state, world["before"], world["clean_before"])
    assert any(c.get("recovered") for c in summary["object_types"].values()), summary


@pytest.mark.parametrize("nth", range(3))
def test_killed_while_following_changes_converges(world, fresh, provision, monkeypatch, nth):
    state = str(world["tmp"] / f"change-{nth}.db")
    for k, v in (env_for(fresh.wsdl, world["tmp"]) | {"PROVISION_STATE": state,
                                                       "PROVISION_DATA": str(world["before"])}).items():
        monkeypatch.setenv(k, v)
    assert provision("run", world["manifest"]).code == 0
    env = env_for(fresh.wsdl, world["tmp"]) | {"PROVISION_STATE": state, "PROVISION_DATA": str(world["after"])}
    killed = killed_run(world["manifest"], env, spread(world["delta_commits"], 3)[nth])
    assert killed.returncode == -9, killed.stderr
    converges(provision, monkeypatch, world, fresh, state, world["after"], world["clean_after"])
