"""Standalone mode: Deployment, Service, PodDisruptionBudget, optional ServiceMonitor, image from values."""

from chart_rendering import ALL_VALUES, CHART, app_version, of_kind, one, render, relay_container
from scenarios import rendered


def test_defaults_render_the_standalone_set():
    kinds = sorted(d["kind"] for d in rendered("standalone-defaults"))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]


def test_replicas_follow_the_values():
    assert one(rendered("standalone-defaults"), "Deployment")["spec"]["replicas"] >= 1
    assert one(rendered("standalone-all-values"), "Deployment")["spec"]["replicas"] == 3


def test_image_comes_from_values_and_defaults_to_app_version():
    relay = relay_container(one(rendered("standalone-defaults"), "Deployment")["spec"]["template"]["spec"])
    assert relay["image"] == f"outbox-relay:{app_version()}"
    assert relay["imagePullPolicy"] == "IfNotPresent"
    docs = render(CHART, (), {"image.repository": "registry.example.com/relay", "image.tag": "9.9.9"})
    assert relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])["image"] == "registry.example.com/relay:9.9.9"
    pinned = relay_container(one(rendered("standalone-all-values"), "Deployment")["spec"]["template"]["spec"])
    assert pinned["image"].startswith("registry.example.com/platform/outbox-relay@sha256:")


def test_resources_have_defaults():
    relay = relay_container(one(rendered("standalone-defaults"), "Deployment")["spec"]["template"]["spec"])
    assert relay["resources"]["requests"]["cpu"] and relay["resources"]["requests"]["memory"]
    assert relay["resources"]["limits"]["memory"]


def test_pod_disruption_budget_selects_the_relay_pods():
    docs = rendered("standalone-defaults")
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    all_values_pdb = one(rendered("standalone-all-values"), "PodDisruptionBudget")
    assert all_values_pdb["spec"] == {**all_values_pdb["spec"], "minAvailable": 2}
    assert "maxUnavailable" not in all_values_pdb["spec"]


def test_service_monitor_is_off_by_default_and_scrapes_metrics_when_on():
    assert not of_kind(rendered("standalone-defaults"), "ServiceMonitor")
    docs = rendered("standalone-all-values")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["endpoints"][0]["port"] == "admin"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_existing_service_account_is_used_when_not_created():
    docs = rendered("standalone-all-values")
    assert not of_kind(docs, "ServiceAccount")
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "shop-outbox-relay"


def test_sidecar_mode_renders_no_workload_of_its_own():
    assert render(CHART, (), {"mode": "sidecar"}) == []
