"""Renders helm/outbox-relay (and the example host chart) with the real `helm` binary.

The binary comes from $HELM, else .build-tools/helm/helm (put there by
scripts/check-chart), else `helm` on PATH; without one the tests fail, they do
not skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "outbox-relay"
HOST_APP = REPO / "helm" / "examples" / "host-app"
ALL_VALUES = REPO / "helm" / "examples" / "all-values.yaml"
RELEASE = "shop"


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


@lru_cache(maxsize=1)
def helm_binary() -> str:
    candidates = [os.environ.get("HELM"), str(REPO / ".build-tools" / "helm" / "helm"), shutil.which("helm")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no helm binary: run scripts/check-chart once (it installs one) or set HELM=/path/to/helm")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=60)


@lru_cache(maxsize=1)
def build_host_app_dependencies() -> None:
    """Packages the current relay chart into the example's charts/ (it must never test a stale copy)."""
    result = helm("dependency", "update", "--skip-refresh", str(HOST_APP))
    if result.returncode != 0:
        raise RuntimeError(f"helm dependency update {HOST_APP} failed:\n{result.stderr}")


def _template_args(chart: Path, values_files: Iterable[Path], sets: dict[str, Any] | None) -> list[str]:
    args = ["template", RELEASE, str(chart), "--namespace", "shop"]
    for path in values_files:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set-string" if isinstance(value, str) else "--set", f"{key}={_set_text(value)}"]
    return args


def _set_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_text(chart: Path = CHART, values_files: Iterable[Path] = (), sets: dict[str, Any] | None = None) -> str:
    if chart == HOST_APP:
        build_host_app_dependencies()
    result = helm(*_template_args(chart, values_files, sets))
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def render(chart: Path = CHART, values_files: Iterable[Path] = (), sets: dict[str, Any] | None = None) -> list[dict]:
    """The rendered manifests as dicts (empty documents dropped)."""
    text = render_text(chart, values_files, sets)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_error(chart: Path = CHART, values_files: Iterable[Path] = (), raw_sets: Iterable[str] = ()) -> str:
    """stderr of a `helm template` that must fail; raw_sets are passed as `--set KEY=VALUE` (helm types them)."""
    args = _template_args(chart, values_files, None)
    for item in raw_sets:
        args += ["--set", item]
    result = helm(*args)
    if result.returncode == 0:
        raise AssertionError(f"helm template {' '.join(args[3:])} succeeded; it should have been refused")
    return result.stderr


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc.get("kind") == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload among the manifests."""
    specs = []
    for doc in docs:
        if doc.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            specs.append((f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    return specs


def containers_of(spec: dict) -> list[dict]:
    """Init containers (native sidecars among them) and containers of a pod spec."""
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def is_relay(container: dict) -> bool:
    """A container running `outbox-relay run` or `outbox-relay migrate` (the image's entrypoint)."""
    return (container.get("args") or [""])[0] in {"run", "migrate"}


def relay_container(spec: dict) -> dict:
    """The relay's long-running container in a pod spec."""
    found = [c for c in containers_of(spec) if (c.get("args") or [""])[0] == "run"]
    assert len(found) == 1, f"expected one outbox-relay container, found {[c['name'] for c in found]}"
    return found[0]


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env") or []}


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)
