"""Shared fixtures: in-memory apps reset per test, plugins with the memory connector, a store.

Hypothesis runs without its per-example deadline (200 ms by default) and without the "too slow"
health check: both measure time, and on a loaded machine they fail a correct test. A test that
hangs is still stopped, by pytest-timeout.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from syncd.plugins import Plugins, load_plugins
from syncd.store import Store
from syncd.testing import memory

settings.register_profile(
    "syncd", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("syncd")


@pytest.fixture
def plugins() -> Plugins:
    return load_plugins(extra=[memory])


@pytest.fixture(autouse=True)
def fresh_memory_apps() -> Iterator[None]:
    memory.reset()
    yield
    memory.reset()


#: the engine tests run on both stores (issue 17)
BOTH_STORES = ("test_engine",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    uses_store = "store" in metafunc.fixturenames or module in STORE_HELPERS
    if "store_kind" in metafunc.fixturenames and module.startswith(BOTH_STORES) and uses_store:
        metafunc.parametrize("store_kind", ["sqlite", "postgresql"])


#: engine test modules that open stores through ``pg_support.store_for`` themselves
STORE_HELPERS = {"test_engine_journal", "test_engine_slices"}


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


@pytest.fixture(autouse=True)
def current_store_kind(store_kind: str) -> Iterator[str]:
    import pg_support

    pg_support.CURRENT_KIND = store_kind
    yield store_kind
    pg_support.CURRENT_KIND = "sqlite"


@pytest.fixture
def store(tmp_path: Path, store_kind: str) -> Iterator[Store]:
    from pg_support import make_store

    s = make_store(tmp_path / "state", store_kind)
    s.open()
    yield s
    s.close()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the first-merge example, so that no test changes the tracked files."""
    from support import FIRST_MERGE_EXAMPLE

    target = tmp_path / "config"
    shutil.copytree(FIRST_MERGE_EXAMPLE, target)
    return target
