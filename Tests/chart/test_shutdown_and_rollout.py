"""Pods wait out the relay's drain; config changes roll the pods."""

import math

import pytest

from chart_rendering import CHART, duration_seconds, env_of, one, pod_specs, relay_container, render


def shutdown_grace(docs, relay):
    entry = env_of(relay).get("OUTBOX_SHUTDOWN_GRACE")
    text = entry["value"] if entry else one(docs, "ConfigMap")["data"]["OUTBOX_SHUTDOWN_GRACE"]
    return duration_seconds(text)


def test_termination_grace_exceeds_the_shutdown_grace(scenario):
    name, docs = scenario
    for workload, spec in pod_specs(docs):
        if workload.startswith("Job/"):
            continue
        grace = shutdown_grace(docs, relay_container(spec))
        assert spec["terminationGracePeriodSeconds"] > grace, f"{name}: {workload}"


@pytest.mark.parametrize("grace", ["250ms", "15s", "1.5m", "2h", "45"])
def test_termination_grace_is_derived_from_any_duration(grace):
    docs = render(CHART, (), {"config.shutdownGrace": grace, "terminationGraceMarginSeconds": 10})
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == math.ceil(duration_seconds(grace)) + 10


def checksum(docs):
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_checksum_annotation_rolls_pods_on_config_change():
    base = checksum(render(CHART))
    assert len(base) == 64
    assert checksum(render(CHART)) == base, "the checksum must be stable"
    assert checksum(render(CHART, (), {"config.logLevel": "debug"})) != base
    assert checksum(render(CHART, (), {"config.maxInFlight": 7})) != base


def test_deployment_reads_settings_from_the_checksummed_configmap():
    docs = render(CHART)
    configmap = one(docs, "ConfigMap")
    relay = relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    assert relay["envFrom"][0] == {"configMapRef": {"name": configmap["metadata"]["name"]}}
    assert configmap["data"]["OUTBOX_MAX_IN_FLIGHT"] == "100"
    assert configmap["data"]["OUTBOX_RETRY_SCHEDULE"] == "5s,5m,30m,2h,5h,10h,10h"
