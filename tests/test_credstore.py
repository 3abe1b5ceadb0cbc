"""``${cred:NAME}`` outside the service reads systemd's credential store (``/etc/credstore``).

``sudo syncd auth xero-salesflare a`` beside the unit loads the same config as the service,
whose secrets are ``${cred:...}``: root has no ``$CREDENTIALS_DIRECTORY``, and the files are
where ``LoadCredential=NAME`` finds them. (The search path is pointed at a temporary directory;
the real /etc/credstore is used by the systemd test of ``make image-test``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import config_secrets
from syncd.config_errors import ConfigError
from syncd.config_secrets import resolve


def test_cred_without_credentials_directory_reads_the_credstore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    empty, store = tmp_path / "etc-credstore", tmp_path / "run-credstore"
    empty.mkdir()
    store.mkdir()
    (store / "xero-client-secret").write_text("from-the-credstore\n")
    monkeypatch.setattr(config_secrets, "CREDSTORES", (empty, store))
    resolved = resolve("${cred:xero-client-secret}", Path("s.toml"), "a.client_secret")
    assert resolved.value == "from-the-credstore"


def test_cred_found_nowhere_names_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setattr(config_secrets, "CREDSTORES", (tmp_path / "nothing",))
    with pytest.raises(ConfigError) as caught:
        resolve("${cred:missing-one}", Path("s.toml"), "b.api_key")
    message = str(caught.value)
    assert (
        "CREDENTIALS_DIRECTORY" in message and str(tmp_path / "nothing" / "missing-one") in message
    )
