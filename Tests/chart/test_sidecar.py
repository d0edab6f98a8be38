"""The sidecar templates a host chart includes: native sidecar vs plain container."""

from chart_rendering import HOST_APP, app_version, env_of, one, render
from scenarios import rendered


def host_pod(name):
    return one(rendered(name), "Deployment")["spec"]["template"]["spec"]


def test_native_sidecar_is_an_init_container_that_keeps_running():
    pod = host_pod("sidecar-native")
    relays = [c for c in pod["initContainers"] if c["name"] == "outbox-relay"]
    assert len(relays) == 1
    assert relays[0]["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["app"]


def test_plain_sidecar_is_a_regular_container_for_older_clusters():
    pod = host_pod("sidecar-plain-container")
    assert "initContainers" not in pod
    names = [c["name"] for c in pod["containers"]]
    assert names == ["app", "outbox-relay"]
    relay = pod["containers"][1]
    assert "restartPolicy" not in relay


def test_sidecar_takes_settings_inline_and_renders_no_standalone_resources():
    docs = rendered("sidecar-native")
    assert [d["kind"] for d in docs] == ["Deployment"], "the relay chart must render nothing of its own in sidecar mode"
    relay = host_pod("sidecar-native")["initContainers"][0]
    env = env_of(relay)
    assert env["OUTBOX_SHUTDOWN_GRACE"]["value"] == "15s"
    assert env["OUTBOX_LOG_FORMAT"]["value"] == "json"
    assert relay["ports"][0]["name"] == "outbox-admin"
    assert relay["args"] == ["run", "--migrate"]


def test_sidecar_image_defaults_to_the_relay_charts_app_version():
    relay = host_pod("sidecar-native")["initContainers"][0]
    assert relay["image"] == f"outbox-relay:{app_version()}"


def test_sidecar_mounts_its_tmp_volume_in_the_host_pod():
    pod = host_pod("sidecar-plain-container")
    assert {"name": "outbox-relay-tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_sidecar_migration_job_mode_renders_the_hook_and_plain_run():
    docs = rendered("sidecar-migration-job")
    job = one(docs, "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    relay = one(docs, "Deployment")["spec"]["template"]["spec"]["initContainers"][0]
    assert relay["args"] == ["run"]


def test_host_pod_waits_for_the_relay_to_drain():
    docs = render(HOST_APP, (), {"outbox-relay.config.shutdownGrace": "90s"})
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 90
