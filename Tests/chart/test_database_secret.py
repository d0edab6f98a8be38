"""The database URL reaches the relay only through a secretKeyRef; no manifest ever holds it."""

import pytest

from chart_rendering import (
    ALL_VALUES,
    CHART,
    HOST_APP,
    containers_of,
    env_of,
    is_relay,
    of_kind,
    pod_specs,
    render_error,
    render_text,
)


def test_database_url_comes_from_the_secret(scenario):
    name, docs = scenario
    checked = 0
    for workload, spec in pod_specs(docs):
        for container in containers_of(spec):
            if not is_relay(container):
                continue
            checked += 1
            entry = env_of(container).get("OUTBOX_DATABASE_URL")
            assert entry is not None, f"{name}: {workload}/{container['name']} has no OUTBOX_DATABASE_URL"
            assert "value" not in entry, f"{name}: {workload}/{container['name']} inlines the database URL"
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] and ref["key"], f"{name}: empty secretKeyRef"
    assert checked, f"{name}: no relay container rendered"


def test_no_manifest_holds_the_database_url(scenario):
    name, docs = scenario
    for doc in of_kind(docs, "ConfigMap"):
        assert "OUTBOX_DATABASE_URL" not in (doc.get("data") or {}), f"{name}: ConfigMap holds the URL"
    assert not of_kind(docs, "Secret"), f"{name}: the chart must not render a Secret"


@pytest.mark.parametrize(
    ("chart", "values", "secret", "key"),
    [
        (CHART, (), "shop-outbox-relay-database", "url"),
        (CHART, (ALL_VALUES,), "shop-outbox-database", "connection-url"),
        (HOST_APP, (), "shop-database", "url"),
    ],
)
def test_secret_name_and_key_follow_the_values(chart, values, secret, key):
    text = render_text(chart, values)
    assert f"name: {secret}" in text and f"key: {key}" in text
    assert "postgres://" not in text and "postgresql://" not in text


def test_schema_offers_no_plain_database_url():
    error = render_error(raw_sets=["database.url=postgres://user:pw@db/app"])
    assert "url" in error and "not allowed" in error


def test_schema_refuses_the_url_through_extra_env():
    render_error(raw_sets=["extraEnv[0].name=OUTBOX_DATABASE_URL", "extraEnv[0].value=postgres://user:pw@db/app"])
    render_error(raw_sets=["extraEnv[0].name=PGPASSWORD", "extraEnv[0].value=hunter2"])
