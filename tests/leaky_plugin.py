"""A connector that tries hard to leak its secret (for tests/test_secrets.py): it logs it, puts it
in exception messages and in per-record refusals. syncd must redact every one of them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from syncd import hookimpl
from syncd.connector import (
    Capabilities,
    Connector,
    FieldSpec,
    RecordWrite,
    RemoteRecord,
    Setting,
    WriteResult,
)


class LeakyConnector(Connector):
    name = "leaky"
    settings = (
        Setting("api_key", "the secret", required=True, secret=True),
        Setting("tenant", "not declared secret, nor public: a reference into it is secret"),
        Setting("region", "declared public: shown as it is", public=True),
    )
    capabilities = Capabilities(create_batch_size=10)
    fields = (FieldSpec("email", "email"), FieldSpec("first_name", "first_name"))

    async def check(self) -> str:
        raise RuntimeError(
            f"could not connect with key {self.config['api_key']} to tenant "
            f"{self.config.get('tenant')} in region {self.config.get('region')}"
        )

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        logging.getLogger("leaky").warning("listing with api key %s", self.config["api_key"])
        yield [RemoteRecord("x1", {"email": "one@example.com", "first_name": "One"})]

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return [WriteResult(w.key, error=f"key {self.config['api_key']} refused") for w in writes]


@hookimpl
def register_connectors(register: Any) -> None:
    register(LeakyConnector)
