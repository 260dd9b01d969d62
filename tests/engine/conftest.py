"""Fixtures for the engine's integration tests: a fresh in-process API server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kaito.cluster import Cluster, Controllers, start_cluster
from tests.engine.clusterkit import WIDGET_CRD


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A cluster of its own (API objects only, the Widget CRD installed, fast bookmarks)."""
    async with start_cluster(
        controllers=Controllers.api_only(), crds=[WIDGET_CRD], bookmark_interval=0.2
    ) as running:
        await running.create_namespace("apps")
        yield running
