"""Encryption at rest: the operator's store key, AES-GCM sealing of blobs, the key check value.

A store is encrypted when the operator gives a key (``--key-file PATH``,
``$SPEAKERVERIFY_STORE_KEY_FILE`` or ``$SPEAKERVERIFY_STORE_KEY``; 32 bytes, as 64 hex digits,
base64, or 32 raw bytes in a file). Then every embedding and every kept audio clip is sealed with
AES-256-GCM (the ``cryptography`` package) under a fresh 96-bit nonce, with associated data naming
the store, table, row and column, so a blob copied to another row, column or store does not
decrypt. The ``key_check`` meta value (a known token sealed under the key) tells a wrong or
missing key apart from a damaged blob before any result is computed.

Names, durations, model idents, audit records and API-key hashes are not encrypted (they are
needed to list and search the store without the key and hold no voice).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from speakerverify.errors import DataError, StoreKeyError

ENV_KEY = "SPEAKERVERIFY_STORE_KEY"
ENV_KEY_FILE = "SPEAKERVERIFY_STORE_KEY_FILE"
KEY_BYTES = 32
MAGIC = b"SVE1"  # sealed blob: MAGIC + nonce (12 bytes) + ciphertext and tag
NONCE_BYTES = 12
_CHECK_TOKEN = b"speakerverify store key check v1"


def parse_key(data: bytes, where: str) -> bytes:
    """A 32-byte key from 64 hex digits, base64 (standard or URL-safe) or 32 raw bytes."""
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(key) == KEY_BYTES:
            return key
    if len(data) == KEY_BYTES:
        return data
    raise StoreKeyError(f"{where}: not a {KEY_BYTES}-byte key (give 64 hex digits or base64 of "
                        f"{KEY_BYTES} bytes; `speakerverify store new-key FILE` makes one)")


def read_key_file(path: str | os.PathLike) -> bytes:
    p = Path(path).expanduser()
    try:
        return parse_key(p.read_bytes(), str(p))
    except OSError as exc:
        raise StoreKeyError(f"{p}: cannot read the key file ({exc.strerror})") from None


def resolve_key(key: bytes | str | None = None, key_file: str | os.PathLike | None = None) -> bytes | None:
    """The store key: ``key_file``, else ``key``, else ``$SPEAKERVERIFY_STORE_KEY_FILE``, else
    ``$SPEAKERVERIFY_STORE_KEY``; None when none is given (the store is not encrypted)."""
    if key_file is not None:
        return read_key_file(key_file)
    if key is not None:
        return parse_key(key.encode() if isinstance(key, str) else key, "the store key")
    if os.environ.get(ENV_KEY_FILE):
        return read_key_file(os.environ[ENV_KEY_FILE])
    if os.environ.get(ENV_KEY):
        return parse_key(os.environ[ENV_KEY].encode(), f"${ENV_KEY}")
    return None


def write_key_file(path: str | os.PathLike) -> Path:
    """A new random key, base64, in a new file readable by its owner only (never overwrites)."""
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StoreKeyError(f"{p}: already exists; not overwriting a key file") from None
    except OSError as exc:
        raise StoreKeyError(f"{p}: cannot create the key file ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
    return p


@dataclass
class Cipher:
    """Seals and opens a store's blobs; with ``key=None`` blobs are stored as they are."""

    key: bytes | None
    store_id: str
    path: str

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def _aad(self, table: str, column: str, row: int) -> bytes:
        return f"speakerverify:{self.store_id}:{table}.{column}:{row}".encode()

    def seal(self, data: bytes, table: str, column: str, row: int) -> bytes:
        if self.key is None:
            return data
        nonce = secrets.token_bytes(NONCE_BYTES)
        return MAGIC + nonce + AESGCM(self.key).encrypt(nonce, data, self._aad(table, column, row))

    def open(self, blob: bytes, table: str, column: str, row: int) -> bytes:
        blob = bytes(blob)
        sealed = blob.startswith(MAGIC) and len(blob) >= len(MAGIC) + NONCE_BYTES + 16
        if self.key is None:
            if sealed:
                raise StoreKeyError(f"store {self.path} is encrypted: needs a key")
            return blob
        if not sealed:
            raise DataError(f"{self.path}: {table} row {row} {column} is not encrypted in an encrypted store")
        nonce, body = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES], blob[len(MAGIC) + NONCE_BYTES:]
        try:
            return AESGCM(self.key).decrypt(nonce, body, self._aad(table, column, row))
        except InvalidTag:
            raise DataError(f"{self.path}: {table} row {row} {column} does not decrypt (altered, or moved "
                            "from another row or store)") from None

    def check_value(self) -> str:
        """The ``key_check`` meta value for this key."""
        return base64.b64encode(self.seal(_CHECK_TOKEN, "meta", "key_check", 0)).decode("ascii")

    def matches(self, check_value: str) -> bool:
        try:
            return self.open(base64.b64decode(check_value), "meta", "key_check", 0) == _CHECK_TOKEN
        except (DataError, binascii.Error, ValueError):
            return False


def store_cipher(key: bytes | None, key_check: str | None, store_id: str, path: str, empty: bool) -> Cipher:
    """The cipher for a store whose meta has ``key_check``; one line when the key does not fit:
    missing, wrong, or given for a plaintext store that already holds speakers (``empty`` stores
    simply become encrypted: the caller then stores :meth:`Cipher.check_value`)."""
    cipher = Cipher(key, store_id, path)
    if key_check is not None:
        if key is None:
            raise StoreKeyError(f"store {path} is encrypted: needs a key (--key-file PATH or ${ENV_KEY_FILE} "
                                f"or ${ENV_KEY})")
        if not cipher.matches(key_check):
            raise StoreKeyError(f"store {path} is encrypted: wrong key")
    elif key is not None and not empty:
        raise StoreKeyError(f"store {path} is not encrypted, but a key was given; encrypt it with "
                            f"`speakerverify store rekey --store {path} --new-key-file KEYFILE` (run without a key)")
    return cipher
