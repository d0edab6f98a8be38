"""Every container the chart renders runs hardened: init containers, sidecars and the Job too."""

from chart_rendering import containers_of, is_relay, pod_specs
from scenarios import rendered

HARDENED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
}


def test_every_container_is_hardened(scenario):
    name, docs = scenario
    specs = pod_specs(docs)
    assert specs, f"{name}: no workload rendered"
    for workload, spec in specs:
        for container in containers_of(spec):
            where = f"{name}: {workload} container {container['name']}"
            context = container.get("securityContext") or {}
            for key, expected in HARDENED.items():
                assert context.get(key) is expected, f"{where}: securityContext.{key} is {context.get(key)!r}"
            assert isinstance(context.get("runAsUser"), int) and context["runAsUser"] > 0, (
                f"{where}: runAsUser must be a non-zero number, is {context.get('runAsUser')!r}"
            )
            assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities not dropped"
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: no seccomp profile"
            assert context.get("privileged") in (None, False), f"{where}: privileged"


def test_relay_has_a_writable_tmp_despite_the_read_only_root(scenario):
    name, docs = scenario
    for workload, spec in pod_specs(docs):
        for relay in filter(is_relay, containers_of(spec)):
            mounts = {m["mountPath"]: m["name"] for m in relay.get("volumeMounts") or []}
            assert "/tmp" in mounts, f"{name}: {workload} relay has no /tmp mount"
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: {workload} /tmp is not an emptyDir"


def test_standalone_pod_security_context_is_non_root():
    for name in ("standalone-defaults", "standalone-all-values", "standalone-migration-job"):
        for workload, spec in pod_specs(rendered(name)):
            pod = spec.get("securityContext") or {}
            assert pod.get("runAsNonRoot") is True, f"{name}: {workload}"
            assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: {workload}"
            assert spec.get("automountServiceAccountToken") is False, f"{name}: {workload} mounts an API token"
