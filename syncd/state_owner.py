"""Files a command run as root creates in someone else's state directory go to that someone.

``sudo syncd auth NAME a`` beside a systemd service (``DynamicUser=``, whose state directory
belongs to the dynamic user) or ``docker exec syncd syncd auth ...`` (as root, with ``/data``
owned by the container's user) would otherwise leave the OAuth tokens, the database or its
lock files owned by root, mode 0600: files the daemon then cannot read or write. When the
process runs as root and the state directory belongs to another user, every root-owned entry
under it is handed to the directory's owner and group when the command ends. Files of other
users are never touched, and nothing happens for an ordinary user or a directory root owns.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any


def hand_back(state_dir: Path) -> int:
    """Give root-owned entries under ``state_dir`` to its owner; return how many changed."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return 0
    try:
        top = os.stat(state_dir)  # follows /var/lib/syncd -> private/syncd (DynamicUser=)
    except OSError:
        return 0
    if top.st_uid == 0:
        return 0
    changed = 0
    for root, dirs, files in os.walk(state_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):
                entry = os.lstat(path)
                if entry.st_uid == 0:
                    os.lchown(path, top.st_uid, top.st_gid)
                    changed += 1
    return changed


def hand_back_after(obj: Any) -> None:
    """The CLI's close hook: ``obj`` is its context (config directory, --state-dir, config)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    from syncd.config import load_daemon_config

    try:
        loaded = getattr(obj, "_config", None)
        daemon = loaded.daemon if loaded else load_daemon_config(obj.config_dir, obj.state_dir)
    except Exception:  # a bad config was reported by the command itself; nothing was written
        return
    hand_back(daemon.state_dir)
