"""The relay and the migration Job can use different database URLs: the relay a
least-privileged login (`outbox_relay`), the Job the schema's owner."""

from chart_rendering import ALL_VALUES, CHART, HOST_APP, env_of, one, relay_container, render, render_error

SEPARATE = {
    "migrations.mode": "job",
    "database.existingSecret": "shop-relay-database",
    "migrations.database.existingSecret": "shop-owner-database",
    "migrations.database.existingSecretKey": "owner-url",
}


def database_ref(container: dict) -> dict:
    entry = env_of(container)["OUTBOX_DATABASE_URL"]
    assert "value" not in entry, "the URL must come from a Secret"
    return entry["valueFrom"]["secretKeyRef"]


def job_container(docs: list[dict]) -> dict:
    return one(docs, "Job")["spec"]["template"]["spec"]["containers"][0]


def test_the_job_migrates_with_its_own_secret_and_the_relay_runs_with_its_own():
    docs = render(CHART, (), SEPARATE)
    assert database_ref(job_container(docs)) == {"name": "shop-owner-database", "key": "owner-url"}
    relay = relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    assert database_ref(relay) == {"name": "shop-relay-database", "key": "url"}
    assert relay["args"] == ["run"], "the relay's role cannot migrate: the Job does"


def test_the_job_uses_the_relays_secret_by_default():
    docs = render(CHART, (), {"migrations.mode": "job", "database.existingSecret": "shop-relay-database"})
    assert database_ref(job_container(docs)) == {"name": "shop-relay-database", "key": "url"}


def test_all_values_render_separate_secrets():
    docs = render(CHART, (ALL_VALUES,), {})
    assert database_ref(job_container(docs)) == {"name": "shop-outbox-owner-database", "key": "owner-url"}
    relay = relay_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    assert database_ref(relay) == {"name": "shop-outbox-database", "key": "connection-url"}


def test_a_sidecar_relay_and_its_job_use_separate_secrets():
    sets = {f"outbox-relay.{key}": value for key, value in SEPARATE.items()}
    docs = render(HOST_APP, (), sets)
    assert database_ref(job_container(docs)) == {"name": "shop-owner-database", "key": "owner-url"}
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert database_ref(relay_container(pod)) == {"name": "shop-relay-database", "key": "url"}


def test_a_migration_secret_without_the_job_is_refused():
    error = render_error(raw_sets=["migrations.database.existingSecret=shop-owner-database"])
    assert "migrations.database.existingSecret needs migrations.mode job" in error, error


def test_the_schema_offers_no_plain_migration_url():
    error = render_error(raw_sets=["migrations.database.url=postgres://owner:pw@db/app"])
    assert "schema" in error and "url" in error, error
