"""Reading the config directory's files safely: capped sizes, regular files only, strict UTF-8.

Everything here raises :class:`syncd.config_errors.ConfigError` (never ``OSError``,
``UnicodeDecodeError`` or ``RecursionError``), and nothing blocks: a FIFO or a device is refused
after opening it non-blocking and looking at what it is, before a single byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError

#: the largest ``syncd.toml`` or sync file read
CONFIG_FILE_LIMIT = 1024 * 1024
#: the largest ``${file:}`` / ``${cred:}`` / ``NAME_FILE`` secret read
SECRET_FILE_LIMIT = 64 * 1024
#: files in ``syncs/`` that are not sync files but are left alone: editor backups
_BACKUP_SUFFIXES = ("~",)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _say(what: str, problem: str) -> str:
    return f"{what}: {problem}" if what else problem


def _os_problem(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return "a broken symbolic link (its target does not exist)"
        return "no such file"
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a path through something that is not a directory"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


def read_bytes(
    path: Path, limit: int, what: str, file: Path | None = None, key: str | None = None
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    ``what`` names the file in messages; ``file``/``key`` say where the error is reported (the
    config file and key that referred to ``path``), by default ``path`` itself.
    """
    where = file if file is not None else path
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigError(where, key, _say(what, _os_problem(exc, path))) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                where, key, _say(what, f"is {_kind(info.st_mode)}, not a regular file")
            )
        if info.st_size > limit:
            raise ConfigError(
                where,
                key,
                _say(what, f"is {info.st_size} bytes, more than the limit of {limit}"),
            )
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise ConfigError(
                    where, key, _say(what, f"is more than the limit of {limit} bytes")
                )
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(where, key, _say(what, _os_problem(exc, path))) from None
    finally:
        os.close(fd)


def decode_utf8(data: bytes, what: str, file: Path, key: str | None = None) -> str:
    """Strict UTF-8 (a UTF-8 byte-order mark is allowed and dropped)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(file, key, _say(what, "is UTF-16 text; save it as UTF-8"))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise ConfigError(
            file,
            key,
            _say(what, f"is not UTF-8 text (byte 0x{byte} on line {line}); save it as UTF-8"),
        ) from None


def read_text(
    path: Path, limit: int, what: str, file: Path | None = None, key: str | None = None
) -> str:
    return decode_utf8(read_bytes(path, limit, what, file, key), what, file or path, key)


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file, parsed, or one :class:`ConfigError` saying what is wrong with it."""
    text = read_text(path, CONFIG_FILE_LIMIT, "")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            path, None, "not usable TOML: arrays or tables nested too deeply"
        ) from None
    except ValueError as exc:  # an integer of more than 4,300 digits, say
        raise ConfigError(path, None, f"not usable TOML: {exc}".split("; use ")[0]) from None


# --- the directory ----------------------------------------------------------------------------


@dataclass
class Listing:
    """What the config directory holds: the sync files to load and what is wrong with the rest."""

    daemon_file: Path | None = None
    sync_files: list[Path] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)


def _entries(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigError(directory, None, _os_problem(exc, directory)) from None


def list_config_directory(directory: Path) -> Listing:
    """Find ``syncd.toml`` and ``syncs/*.toml``; anything that looks meant but would not be read
    (a ``crm.TOML``, a stray ``crm.toml`` beside ``syncd.toml``, a broken link, ``syncs`` being a
    file, two names that differ only in case) is a problem, not silently skipped."""
    listing = Listing()
    try:
        info = directory.stat()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.islink(directory):
            raise ConfigError(directory, None, "config directory does not exist") from None
        raise ConfigError(
            directory, None, f"config directory: {_os_problem(exc, directory)}"
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(directory, None, "config directory: is not a directory")
    for name in _entries(directory):
        path = directory / name
        folded = name.casefold()
        if name == "syncd.toml":
            listing.daemon_file = path
        elif folded == "syncd.toml":
            listing.problems.append(
                ConfigError(
                    path, None, "not read: the daemon settings file must be named syncd.toml"
                )
            )
        elif folded == "syncs" and name != "syncs":
            listing.problems.append(
                ConfigError(path, None, "not read: the sync files' directory must be named syncs")
            )
        elif folded.endswith(".toml") and not name.startswith("."):
            listing.problems.append(
                ConfigError(
                    path,
                    None,
                    "not read: sync files belong in syncs/ (only syncd.toml is read here)",
                )
            )
    syncs = directory / "syncs"
    if not os.path.lexists(syncs):
        return listing
    try:
        syncs_info = syncs.stat()
    except OSError as exc:
        listing.problems.append(ConfigError(syncs, None, _os_problem(exc, syncs)))
        return listing
    if not stat.S_ISDIR(syncs_info.st_mode):
        listing.problems.append(
            ConfigError(syncs, None, f"is {_kind(syncs_info.st_mode)}; it must be a directory")
        )
        return listing
    try:
        names = _entries(syncs)
    except ConfigError as exc:
        listing.problems.append(exc)
        return listing
    seen: dict[str, str] = {}
    for name in names:
        if name.startswith(".") or name.endswith(_BACKUP_SUFFIXES):
            continue  # hidden files and editor backups
        path = syncs / name
        if not name.endswith(".toml"):
            if name.casefold().endswith(".toml"):
                hint = f"sync files end in .toml (lower case): rename it to {name[:-5]}.toml"
            else:
                hint = "only NAME.toml files belong in syncs/; move other files out"
            listing.problems.append(ConfigError(path, None, f"not read: {hint}"))
            continue
        folded = name.casefold()
        if folded in seen:
            listing.problems.append(
                ConfigError(
                    path,
                    None,
                    f"same name as {seen[folded]} but for letter case: two syncs may not differ "
                    "only in case",
                )
            )
            continue
        seen[folded] = name
        listing.sync_files.append(path)
    return listing
