"""values.schema.json refuses wrong types, unknown keys and malformed settings at `helm template` time."""

import pytest

from chart_rendering import HOST_APP, render_error


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCount=three", "replicaCount"),
        ("replicaCount=0", "replicaCount"),
        ("config.maxInFlight=lots", "config.maxInFlight"),
        ("config.shutdownGrace=15 seconds", "config.shutdownGrace"),
        ("config.retrySchedule=5s;5m", "config.retrySchedule"),
        ("config.logFormat=xml", "config.logFormat"),
        ("config.allowPrivateNetworks=maybe", "config.allowPrivateNetworks"),
        ("admin.port=70000", "admin.port"),
        ("mode=daemonset", "mode"),
        ("migrations.mode=sometimes", "migrations.mode"),
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        ("sidecar.native=yes", "sidecar.native"),
        ("replicaCuont=2", "replicaCuont"),
        ("config.unknownSetting=1", "unknownSetting"),
    ],
)
def test_schema_refuses(setting, complaint):
    error = render_error(raw_sets=[setting])
    assert "schema" in error and complaint in error, error


def test_schema_also_guards_the_sidecar_values_of_a_host_chart():
    error = render_error(HOST_APP, raw_sets=["outbox-relay.config.maxInFlight=lots"])
    assert "maxInFlight" in error, error
