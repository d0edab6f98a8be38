"""Probes hit the admin port by name, and the relay listens where the port says."""

from chart_rendering import ALL_VALUES, CHART, HOST_APP, env_of, one, pod_specs, relay_container, render


def relay_specs(docs):
    return [(w, s) for w, s in pod_specs(docs) if not w.startswith("Job/")]


def admin_listen(docs, container):
    entry = env_of(container).get("OUTBOX_ADMIN_LISTEN")
    if entry is not None:
        return entry["value"]
    return one(docs, "ConfigMap")["data"]["OUTBOX_ADMIN_LISTEN"]


def test_probes_point_at_the_admin_port(scenario):
    name, docs = scenario
    for workload, spec in relay_specs(docs):
        relay = relay_container(spec)
        ports = {p["name"]: p["containerPort"] for p in relay["ports"] if p["name"] != "api"}
        assert len(ports) == 1, f"{name}: {workload} relay ports {ports}"
        (port_name, port_number), = ports.items()
        assert relay["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}, name
        assert relay["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}, name
        assert relay["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port_name}, name
        assert admin_listen(docs, relay) == f"0.0.0.0:{port_number}", f"{name}: listen address and port disagree"


def test_standalone_has_readiness_on_readyz():
    docs = render(CHART)
    relay = relay_container(pod_specs(docs)[0][1])
    assert relay["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}


def test_changing_the_admin_port_moves_listener_port_and_service_together():
    docs = render(CHART, (), {"admin.port": 9555})
    relay = relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    assert relay["ports"] == [{"name": "admin", "containerPort": 9555, "protocol": "TCP"}]
    assert one(docs, "ConfigMap")["data"]["OUTBOX_ADMIN_LISTEN"] == "0.0.0.0:9555"
    assert one(docs, "Service")["spec"]["ports"][0]["targetPort"] == "admin"


def test_service_exposes_the_admin_port_by_name():
    docs = render(CHART, (ALL_VALUES,))
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "admin", "port": 9191, "targetPort": "admin", "protocol": "TCP"},
        {"name": "api", "port": 8181, "targetPort": "api", "protocol": "TCP"},
    ]
    deployment = one(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9191" and annotations["prometheus.io/path"] == "/metrics"


def test_sidecar_readiness_probe_can_be_left_out():
    docs = render(HOST_APP, (), {"outbox-relay.sidecar.readinessProbe": False})
    relay = relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    assert "readinessProbe" not in relay
    assert relay["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_admin_api_is_off_unless_enabled():
    docs = render(CHART)
    assert "OUTBOX_API_LISTEN" not in one(docs, "ConfigMap")["data"]
    assert [p["name"] for p in one(docs, "Service")["spec"]["ports"]] == ["admin"]
    docs = render(CHART, (ALL_VALUES,))
    relay = relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    assert {"name": "api", "containerPort": 8181, "protocol": "TCP"} in relay["ports"]
    assert one(docs, "ConfigMap")["data"]["OUTBOX_API_LISTEN"] == "0.0.0.0:8181"
    assert one(docs, "ConfigMap")["data"]["OUTBOX_CA_BUNDLE"] == "/etc/outbox-relay/ca/ca.pem"
