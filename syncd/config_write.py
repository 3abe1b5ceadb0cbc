"""Writing sync files from the console: tomlkit edits (a person's comments, key order and layout
survive), secrets kept out of the file (stored under the state directory, mode 0600, referenced as
``${file:...}``), validation by the very code ``syncd check`` runs (:func:`syncd.config.load_sync`),
and refusing a save over a file that changed since it was opened (its hash).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.config_errors import ConfigError
from syncd.config_files import CONFIG_FILE_LIMIT, read_bytes

if TYPE_CHECKING:
    # tomlkit is imported by the functions that edit a document: a daemon whose console never
    # writes a sync file does not hold it (tests/test_daemon_startup.py)
    import tomlkit

#: where the console keeps the secrets it was given, under the state directory
SECRETS_DIR = "console-secrets"


class ChangedSinceOpened(Exception):
    """The file is not the one the form was made from."""


class NotWritable(Exception):
    """The config directory cannot be written (mounted read-only, managed elsewhere)."""


def file_hash(path: Path) -> str:
    """The SHA-256 of a sync file's bytes; ``""`` when there is no file."""
    if not os.path.lexists(path):
        return ""
    return hashlib.sha256(read_bytes(path, CONFIG_FILE_LIMIT, "")).hexdigest()


def read_document(path: Path) -> tomlkit.TOMLDocument:
    import tomlkit

    if not os.path.lexists(path):
        return tomlkit.document()
    text = read_bytes(path, CONFIG_FILE_LIMIT, "").decode("utf-8")
    try:
        return tomlkit.parse(text)
    except Exception as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None


def writable(config_dir: Path) -> bool:
    syncs = config_dir / "syncs"
    target = syncs if syncs.is_dir() else config_dir
    if not os.access(target, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".syncd-probe-", dir=target)
    except OSError:  # a read-only mount answers access() with yes for root
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def set_key(container: Any, key: str, value: Any) -> None:
    """Set (or, for ``None``, remove) a key, keeping the item's place and its comment."""
    import tomlkit
    from tomlkit.items import Table

    if value is None:
        if key in container:
            del container[key]
        return
    if key in container:
        old = container[key]
        if not isinstance(old, Table) and not isinstance(value, list | dict):
            trivia = getattr(old, "trivia", None)
            item = tomlkit.item(value)
            if trivia is not None and hasattr(item, "trivia"):
                item.trivia.comment = trivia.comment
                item.trivia.comment_ws = trivia.comment_ws
            container[key] = item
            return
    container[key] = value


def apply(
    doc: tomlkit.TOMLDocument,
    top: Mapping[str, Any],
    sides: Mapping[str, Mapping[str, Any]],
    fields: list[dict[str, str]] | None,
    rules: dict[str, list[dict[str, Any]]] | None,
) -> None:
    """Edit ``doc`` in place: top-level keys, the ``[a]``/``[b]`` tables, and (when given) the
    ``[[fields]]`` and ``[rules]`` arrays, which are replaced whole."""
    import tomlkit

    for key, value in top.items():
        set_key(doc, key, value)
    for side, settings in sides.items():
        if side not in doc:
            doc[side] = tomlkit.table()
        table = doc[side]
        for key, value in settings.items():
            set_key(table, key, value)
    if fields is not None:
        if "fields" in doc:
            del doc["fields"]
        if fields:
            array = tomlkit.aot()
            for mapping in fields:
                array.append(tomlkit.item(mapping))
            doc["fields"] = array
    if rules is not None:
        if "rules" in doc:
            del doc["rules"]
        present = {k: v for k, v in rules.items() if v}
        if present:
            table = tomlkit.table(is_super_table=True)
            for direction, items in present.items():
                array = tomlkit.aot()
                for rule in items:
                    array.append(tomlkit.item(rule))
                table[direction] = array
            doc["rules"] = table


def dumps(doc: tomlkit.TOMLDocument) -> str:
    import tomlkit

    return tomlkit.dumps(doc)


def store_secret(state_dir: Path, sync: str, side: str, key: str, value: str) -> Path:
    """Keep a secret typed into the console in its own 0600 file; the path to reference."""
    directory = state_dir / SECRETS_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{sync}.{side}.{key}"
    fd, temp = tempfile.mkstemp(prefix=".pending-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, value.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    return path


def pending_secret(state_dir: Path, value: str) -> Path:
    """A secret written for validation only (renamed by :func:`keep_secret` when it is saved)."""
    directory = state_dir / SECRETS_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f".pending-{secrets.token_hex(8)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode("utf-8"))
    finally:
        os.close(fd)
    return path


def secret_path(state_dir: Path, sync: str, side: str, key: str) -> Path:
    return state_dir / SECRETS_DIR / f"{sync}.{side}.{key}"


def reference(path: Path) -> str:
    return "${file:" + str(path) + "}"


def write_sync(path: Path, text: str, expected_hash: str) -> None:
    """Replace ``path`` with ``text`` atomically, unless it changed since it was opened.

    Raises :class:`ChangedSinceOpened`, :class:`NotWritable`."""
    if file_hash(path) != expected_hash:
        raise ChangedSinceOpened(str(path))
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise NotWritable(str(exc)) from None
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
        os.close(fd)
        if os.path.exists(path):
            os.chmod(temp, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise NotWritable(str(exc)) from None


def remove_sync(path: Path, expected_hash: str | None = None) -> None:
    if expected_hash is not None and file_hash(path) != expected_hash:
        raise ChangedSinceOpened(str(path))
    try:
        path.unlink()
    except OSError as exc:
        raise NotWritable(str(exc)) from None


def validate(text: str, name: str, plugins: Any, daemon: Any = None) -> list[ConfigError]:
    """The problems ``syncd check`` would find in ``text`` as ``syncs/NAME.toml`` (an empty list
    when it is valid): the same :func:`syncd.config.load_sync`."""
    from syncd.config import load_sync

    with tempfile.TemporaryDirectory(prefix="syncd-wizard-") as tmp:
        path = Path(tmp) / "syncs" / f"{name}.toml"
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
        try:
            load_sync(path, plugins, daemon)
        except ConfigError as exc:
            return list(exc.problems)
    return []


def validate_sync(
    text: str, name: str, plugins: Any, daemon: Any = None, config_dir: Path | None = None
) -> tuple[list[ConfigError], Any]:
    """Like :func:`validate`, also giving the loaded :class:`~syncd.config.SyncConfig` when valid
    (to run each side's connection check with). With ``config_dir``, relative paths in settings
    mean what they will mean in the config directory (its entries are linked beside the file)."""
    from syncd.config import load_sync

    with tempfile.TemporaryDirectory(prefix="syncd-wizard-") as tmp:
        path = Path(tmp) / "syncs" / f"{name}.toml"
        path.parent.mkdir()
        if config_dir is not None and config_dir.is_dir():
            for entry in os.listdir(config_dir):
                if entry != "syncs":
                    os.symlink(config_dir / entry, Path(tmp) / entry)
        path.write_text(text, encoding="utf-8")
        try:
            return [], load_sync(path, plugins, daemon)
        except ConfigError as exc:
            return list(exc.problems), None


def keep_secret(pending: Path, final: Path) -> None:
    """A validated secret takes its place (0600, atomically)."""
    os.chmod(pending, 0o600)
    os.replace(pending, final)
