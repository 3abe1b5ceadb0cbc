"""Shared fixtures: in-memory apps reset per test, plugins with the memory connector, a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.plugins import Plugins, load_plugins
from syncd.store import Store
from syncd.testing import memory


@pytest.fixture
def plugins() -> Plugins:
    return load_plugins(extra=[memory])


@pytest.fixture(autouse=True)
def fresh_memory_apps() -> Iterator[None]:
    memory.reset()
    yield
    memory.reset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state")
    s.open()
    yield s
    s.close()
