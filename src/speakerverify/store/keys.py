"""API keys for the REST service, kept (as SHA-256 hashes only) in the speaker store's file.

A key is ``svk_`` followed by 43 random URL-safe characters (256 bits); it is shown once when
created. Keys are random, so a plain SHA-256 of the key is enough to store (no password hashing
needed), and looking a key up by its hash leaks nothing through timing.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from speakerverify.errors import SpeakerVerifyError
from speakerverify.store import audit
from speakerverify.store.db import guarded
from speakerverify.store.speaker_store import SpeakerStore

PREFIX = "svk_"


@dataclass(frozen=True)
class KeyInfo:
    name: str
    admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@guarded
def create_key(store: SpeakerStore, name: str, admin: bool = False, actor: str | None = None) -> str:
    """Create a key called ``name``; returns the key itself (only its hash is stored). Recorded
    in the audit log as ``key-add`` (the key's name, never the key)."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise SpeakerVerifyError("key name must be 1-100 printable characters")
    key = PREFIX + secrets.token_urlsafe(32)
    try:
        with store.db.transaction() as con:
            con.execute("INSERT INTO api_keys (name, key_hash, admin, created) VALUES (?, ?, ?, ?)",
                        (name, hash_key(key), int(admin), time.time()))
            audit.record(con, actor or store.actor, "key-add", None, f"ok: {'admin ' if admin else ''}key {name!r}")
    except store.db.IntegrityError:
        raise SpeakerVerifyError(f"a key named {name!r} already exists in {store.path}") from None
    return key


@guarded
def check_key(store: SpeakerStore, key: str) -> KeyInfo | None:
    """The key's name and role, or None when it is not a valid key."""
    if not key or not key.startswith(PREFIX) or len(key) > 200:
        return None
    row = store.db.connection().execute("SELECT name, admin FROM api_keys WHERE key_hash = ?",
                                (hash_key(key),)).fetchone()
    return None if row is None else KeyInfo(row[0], bool(row[1]))


@guarded
def list_keys(store: SpeakerStore) -> list[dict]:
    rows = store.db.connection().execute("SELECT name, admin, created FROM api_keys ORDER BY name").fetchall()
    return [{"name": r[0], "admin": bool(r[1]), "created": r[2]} for r in rows]


@guarded
def revoke_key(store: SpeakerStore, name: str, actor: str | None = None) -> bool:
    """Delete the key called ``name`` (audit: ``key-remove``); False when there is none."""
    with store.db.transaction(erase=True) as con:
        found = bool(con.execute("DELETE FROM api_keys WHERE name = ?", (name.strip(),)).rowcount)
        audit.record(con, actor or store.actor, "key-remove", None, f"{'ok' if found else 'not found'}: key "
                     f"{name.strip()!r}")
    return found
