"""Secret references in config values: ``${env:NAME}`` (or Docker's ``NAME_FILE``),
``${file:PATH}`` and ``${cred:NAME}`` (systemd's ``$CREDENTIALS_DIRECTORY``).

``$$`` is a literal ``$``. Anything else that looks like a reference but is not a valid one
(``${ENV:X}``, ``$X``, ``${env:X`` without its ``}``, ``${file:}``, an unknown scheme) is an error
naming the key: it is never sent to an app as if it were the value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from syncd.config_errors import ConfigError
from syncd.config_files import SECRET_FILE_LIMIT, read_text

SCHEMES = ("env", "file", "cred")
#: where systemd's LoadCredential=NAME finds NAME: ${cred:NAME} reads it there outside the service
CREDSTORES = (Path("/etc/credstore"), Path("/run/credstore"), Path("/usr/lib/credstore"))
#: secrets shorter than this cannot be redacted safely (they would mask ordinary words)
MIN_SECRET_LENGTH = 8
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CRED_NAME = re.compile(r"^[A-Za-z0-9_.@:-]+$")


@dataclass(frozen=True)
class Resolved:
    """A config string with its references replaced."""

    value: str
    #: the reference texts found (``${env:X}``), in order
    references: tuple[str, ...] = ()
    #: what each reference resolved to
    parts: tuple[str, ...] = ()


def resolve(value: str, file: Path, key: str) -> Resolved:
    """Replace every reference in ``value``; raise :class:`ConfigError` naming ``key``."""
    if "$" not in value:
        return Resolved(value)
    out: list[str] = []
    references: list[str] = []
    parts: list[str] = []
    pos = 0
    while True:
        at = value.find("$", pos)
        if at < 0:
            out.append(value[pos:])
            break
        out.append(value[pos:at])
        following = value[at + 1 : at + 2]
        if following == "$":
            out.append("$")
            pos = at + 2
            continue
        if following == "{":
            end = value.find("}", at)
            if end < 0:
                shown = value[at : at + 40]
                raise ConfigError(
                    file, key, f"unterminated secret reference {shown!r}: missing the closing }}"
                )
            reference = value[at : end + 1]
            resolved = _resolve_one(reference, value[at + 2 : end], file, key)
            out.append(resolved)
            references.append(reference)
            parts.append(resolved)
            pos = end + 1
            continue
        if following.isalpha() or following == "_":
            name = re.match(r"[A-Za-z0-9_]*", value[at + 1 :])
            word = name.group(0) if name else following
            raise ConfigError(
                file,
                key,
                f"${word} looks like a secret reference but is not one: write ${{env:{word}}} "
                "(or $$ for a literal $)",
            )
        out.append("$")
        pos = at + 1
    return Resolved("".join(out), tuple(references), tuple(parts))


def _resolve_one(reference: str, body: str, file: Path, key: str) -> str:
    scheme, sep, name = body.partition(":")
    if not sep or scheme not in SCHEMES:
        if sep and scheme.strip().lower() in SCHEMES:
            hint = f"write ${{{scheme.strip().lower()}:...}} in lower case"
        else:
            hint = "known: ${env:NAME}, ${file:PATH}, ${cred:NAME}; $$ is a literal $"
        raise ConfigError(file, key, f"{reference} is not a valid secret reference ({hint})")
    name = name.strip()
    if not name:
        raise ConfigError(file, key, f"{reference}: empty reference (it needs a name or path)")
    if scheme == "env":
        if not _ENV_NAME.match(name):
            raise ConfigError(
                file, key, f"{reference}: {name!r} is not an environment variable name"
            )
        return from_env(name, file, key)
    if scheme == "file":
        return read_secret_file(_expand(name, reference, file, key), file, key, f"{reference}")
    if not _CRED_NAME.match(name) or name in (".", ".."):
        raise ConfigError(file, key, f"{reference}: {name!r} is not a credential name")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        # outside the service (`sudo syncd auth ...` beside it): where LoadCredential=NAME
        # itself looks, readable by root only
        for store in CREDSTORES:
            try:
                found = (store / name).is_file()
            except OSError:
                found = False
            if found:
                return read_secret_file(store / name, file, key, reference)
        raise ConfigError(
            file,
            key,
            f"{reference} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=), or, run as "
            f"root, the file {CREDSTORES[0] / name}",
        )
    return read_secret_file(Path(directory) / name, file, key, reference)


def _expand(name: str, reference: str, file: Path, key: str) -> Path:
    path = Path(name)
    if name.startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:
            path = Path(name)
        if str(path).startswith("~"):
            user = name[1:].split("/", 1)[0]
            who = f"user {user!r}" if user else "the current user"
            raise ConfigError(file, key, f"{reference}: cannot expand ~ ({who} has no home)")
    return path


def from_env(name: str, file: Path, key: str) -> str:
    if name in os.environ:
        return os.environ[name]
    indirect = os.environ.get(f"{name}_FILE")
    if indirect:
        return read_secret_file(Path(indirect), file, key, f"{name}_FILE ({indirect})")
    raise ConfigError(file, key, f"environment variable {name} is not set (nor {name}_FILE)")


def read_secret_file(path: Path, file: Path, key: str, what: str) -> str:
    text = read_text(path, SECRET_FILE_LIMIT, what, file, key).rstrip("\r\n")
    if _CONTROL.search(text):
        raise ConfigError(
            file, key, f"{what}: holds control characters (a NUL byte, say): not a text secret"
        )
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_secret_length(value: str, file: Path, key: str, source: str, hint: str = "") -> None:
    """Refuse a secret too short to redact safely. ``source`` says where it came from (never the
    value itself); ``hint`` is added to the message."""
    if len(value) < MIN_SECRET_LENGTH:
        size = "empty" if not value else f"{len(value)} characters long"
        raise ConfigError(
            file,
            key,
            f"{source} is {size}; a secret must be at least {MIN_SECRET_LENGTH} characters, "
            f"or it cannot be masked safely in logs and messages{hint}",
        )
