"""The plugin loads through its entry point, as a third-party plugin would."""

from __future__ import annotations

from syncd_salesfire.connector import SalesfireConnector

from syncd.plugins import load_plugins


def test_entry_point_registers_connector_and_sandbox() -> None:
    plugins = load_plugins()
    assert plugins.connector("salesfire") is SalesfireConnector
    assert "salesfire" in plugins.sandboxes
    assert not [p for p in plugins.problems if "salesfire" in p.plugin]
    capabilities = SalesfireConnector.capabilities
    assert capabilities.write_only and capabilities.archive is None
    assert not capabilities.lookup_by_email
    assert SalesfireConnector.secret_settings() == {"secret"}
