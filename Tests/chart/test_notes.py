"""NOTES.txt tells the operator how to check the relay is delivering."""

import shutil

import yaml

from chart_rendering import CHART, helm


def render_notes(tmp_path, *sets):
    # `helm template` leaves NOTES.txt out; a copy of the chart renders it into a ConfigMap through tpl.
    chart = tmp_path / "outbox-relay"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n'
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    args = ["template", "shop", str(chart), "--namespace", "shop", "--show-only", "templates/zz-notes.yaml"]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["data"]["notes"]


def test_notes_show_port_forward_readyz_metrics_and_subscription_health(tmp_path):
    notes = render_notes(tmp_path)
    assert "kubectl -n shop port-forward deployment/shop-outbox-relay 9090:9090" in notes
    assert "curl -fsS http://127.0.0.1:9090/readyz" in notes
    assert "http://127.0.0.1:9090/metrics" in notes
    assert "outbox.subscription_health" in notes
    assert "create secret generic shop-outbox-relay-database" in notes


def test_notes_follow_the_admin_port(tmp_path):
    notes = render_notes(tmp_path, "admin.port=9191")
    assert "port-forward deployment/shop-outbox-relay 9191:9191" in notes
