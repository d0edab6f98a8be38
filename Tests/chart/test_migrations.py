"""Migrations: `run --migrate` by default, a Helm hook Job when asked, or none."""

from chart_rendering import CHART, of_kind, one, relay_container, render
from scenarios import rendered


def relay_args(docs):
    return relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])["args"]


def test_default_migrates_at_start_without_a_job():
    docs = rendered("standalone-defaults")
    assert relay_args(docs) == ["run", "--migrate"]
    assert not of_kind(docs, "Job")


def test_job_mode_runs_migrate_as_a_pre_install_and_pre_upgrade_hook():
    docs = rendered("standalone-migration-job")
    assert relay_args(docs) == ["run"]
    job = one(docs, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["migrate"]
    # The release's ServiceAccount and ConfigMap do not exist yet when a pre-install hook runs.
    assert "serviceAccountName" not in pod
    assert "envFrom" not in pod["containers"][0]


def test_none_mode_neither_migrates_nor_renders_a_job():
    docs = render(CHART, (), {"migrations.mode": "none"})
    assert relay_args(docs) == ["run"]
    assert not of_kind(docs, "Job")
