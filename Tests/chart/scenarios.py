"""The renders CI checks, each rendered once per test session."""

from __future__ import annotations

from chart_rendering import ALL_VALUES, CHART, HOST_APP, render

# name -> (chart, values files, --set values)
SCENARIOS = {
    "standalone-defaults": (CHART, (), {}),
    "standalone-all-values": (CHART, (ALL_VALUES,), {}),
    "standalone-migration-job": (CHART, (), {"migrations.mode": "job"}),
    "sidecar-native": (HOST_APP, (), {"outbox-relay.sidecar.native": True}),
    "sidecar-plain-container": (HOST_APP, (), {"outbox-relay.sidecar.native": False}),
    "sidecar-migration-job": (HOST_APP, (), {"outbox-relay.migrations.mode": "job"}),
}

_cache: dict[str, list[dict]] = {}


def rendered(name: str) -> list[dict]:
    if name not in _cache:
        chart, values_files, sets = SCENARIOS[name]
        _cache[name] = render(chart, values_files, sets)
    return _cache[name]
