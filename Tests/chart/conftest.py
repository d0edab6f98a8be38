"""pytest wiring of the chart tests: the helpers' folder on sys.path, one fixture per scenario."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenarios import SCENARIOS, rendered  # noqa: E402


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request) -> tuple[str, list[dict]]:
    """(name, manifests) of every scenario in turn."""
    return request.param, rendered(request.param)
