"""Ed25519 station keys: create, list, load; sign and verify record hashes.

Files in the keys directory (``StoreConfig.keys_dir``), per key:

* ``<key_id>.key``  private key, PEM PKCS#8 (unencrypted), mode ``0600``; loading refuses a file
  that group or others can read (as ``ssh`` does).
* ``<key_id>.pub``  public key, PEM SubjectPublicKeyInfo (safe to hand out).
* ``<key_id>.json`` metadata: key id, station id, creation time, algorithm.

``key_id`` = the first 16 hex characters of SHA-256 over the 32 raw public-key bytes.

Signatures are Ed25519 over the 32 raw bytes of a record's SHA-256 (not its hex text), written
as 128 lower-case hex characters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

logger = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_STATION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class KeyFileError(ValueError):
    """A key file is missing, malformed, unsafe or ambiguous; the message names the file."""


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """PEM SubjectPublicKeyInfo text of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(pem: str | bytes, source: str = "<pem>") -> Ed25519PublicKey:
    """Parse a PEM public key; refuses anything that is not Ed25519."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        msg = f"{source}: not a PEM public key ({exc})"
        raise KeyFileError(msg) from exc
    if not isinstance(key, Ed25519PublicKey):
        msg = f"{source}: public key is {type(key).__name__}, expected {ALGORITHM}"
        raise KeyFileError(msg)
    return key


def verify_signature(public_key: Ed25519PublicKey, record_hash: str, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid Ed25519 signature of the digest ``record_hash`` (hex)."""
    try:
        public_key.verify(bytes.fromhex(signature_hex), bytes.fromhex(record_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class KeyInfo:
    """Metadata of one key pair (no secret material)."""

    key_id: str
    station_id: str | None
    created_at: str
    public_key_pem: str
    algorithm: str = ALGORITHM

    def __post_init__(self) -> None:
        if not _KEY_ID_RE.match(self.key_id):
            msg = f"key_id must be 16 lower-case hex characters, got {self.key_id!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class Signer:
    """A station's private key, able to sign record hashes."""

    info: KeyInfo
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        actual = key_id_for(self.private_key.public_key())
        if actual != self.info.key_id:
            msg = f"private key does not match key id {self.info.key_id} (it is {actual})"
            raise ValueError(msg)

    @property
    def key_id(self) -> str:
        return self.info.key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign_hash(self, record_hash: str) -> str:
        """Ed25519 signature (128 hex characters) over the 32 bytes of the hex digest ``record_hash``."""
        digest = bytes.fromhex(record_hash)
        if len(digest) != 32:
            msg = f"record_hash must be a 64-hex-character SHA-256, got {record_hash!r}"
            raise ValueError(msg)
        return self.private_key.sign(digest).hex()

    @classmethod
    def generate(cls, station_id: str | None = None, created_at: datetime | None = None) -> Signer:
        """A fresh in-memory key pair (tests, or :func:`init_key` before writing it out)."""
        private = Ed25519PrivateKey.generate()
        when = (created_at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        info = KeyInfo(
            key_id_for(private.public_key()), station_id, when, public_key_pem(private.public_key())
        )
        return cls(info, private)


def _check_station(station_id: str | None) -> None:
    if station_id is not None and not _STATION_RE.match(station_id):
        msg = f"station id {station_id!r} is invalid; use 1-128 characters of letters, digits, _ . : -"
        raise ValueError(msg)


def init_key(keys_dir: Path, station_id: str | None = None) -> KeyInfo:
    """Create a new key pair in ``keys_dir`` (created with mode 0700 if missing); returns its info."""
    _check_station(station_id)
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = Signer.generate(station_id)
    kid = signer.key_id
    private_pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = keys_dir / f"{kid}.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(key_path, 0o600)  # in case the umask widened nothing but the FS ignored the mode
    (keys_dir / f"{kid}.pub").write_text(signer.info.public_key_pem, encoding="ascii")
    meta = {
        "key_id": kid,
        "station_id": station_id,
        "created_at": signer.info.created_at,
        "algorithm": ALGORITHM,
    }
    (keys_dir / f"{kid}.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("created evidence key %s for station %s in %s", kid, station_id, keys_dir)
    return signer.info


def _read_info(pub_path: Path) -> KeyInfo:
    kid = pub_path.stem
    if not _KEY_ID_RE.match(kid):
        msg = f"{pub_path}: file name must be <16 hex key id>.pub"
        raise KeyFileError(msg)
    pem = pub_path.read_text(encoding="ascii")
    actual = key_id_for(load_public_pem(pem, str(pub_path)))
    if actual != kid:
        msg = f"{pub_path}: public key has key id {actual}, not the {kid} its name says"
        raise KeyFileError(msg)
    meta_path = pub_path.with_suffix(".json")
    meta: Mapping[str, object] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            msg = f"{meta_path}: not valid JSON ({exc})"
            raise KeyFileError(msg) from exc
    station = meta.get("station_id")
    return KeyInfo(kid, None if station is None else str(station), str(meta.get("created_at", "")), pem)


def list_keys(keys_dir: Path) -> list[KeyInfo]:
    """Every key pair's info in ``keys_dir`` (by creation time); empty when the directory is absent."""
    keys_dir = Path(keys_dir)
    if not keys_dir.is_dir():
        return []
    infos = [_read_info(p) for p in sorted(keys_dir.glob("*.pub"))]
    return sorted(infos, key=lambda i: (i.created_at, i.key_id))


def load_public_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id from the ``*.pub`` files of ``keys_dir``."""
    return {
        i.key_id: load_public_pem(i.public_key_pem, f"{keys_dir}/{i.key_id}.pub") for i in list_keys(keys_dir)
    }


def load_signer(keys_dir: Path, *, key_id: str | None = None, station_id: str | None = None) -> Signer:
    """The private key to sign with: by ``key_id``, else the newest key of ``station_id``, else the only key.

    Raises :class:`KeyFileError` naming the directory and the choices when none or several match, or
    when the private key file is readable by group/others.
    """
    keys_dir = Path(keys_dir)
    infos = [i for i in list_keys(keys_dir) if (keys_dir / f"{i.key_id}.key").is_file()]
    if key_id is not None:
        infos = [i for i in infos if i.key_id == key_id]
    elif station_id is not None:
        infos = [i for i in infos if i.station_id == station_id][-1:]
    if not infos:
        msg = (
            f"no private evidence key in {keys_dir} matching key_id={key_id} station={station_id}; "
            "create one with `weldinspect keys init --station ID`"
        )
        raise KeyFileError(msg)
    if len(infos) > 1:
        choices = ", ".join(f"{i.key_id} ({i.station_id})" for i in infos)
        msg = f"several evidence keys in {keys_dir}: {choices}; choose one by key id or station"
        raise KeyFileError(msg)
    info = infos[0]
    key_path = keys_dir / f"{info.key_id}.key"
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        msg = f"private key {key_path} has mode {mode:04o}; it must be 0600 (run: chmod 600 {key_path})"
        raise KeyFileError(msg)
    try:
        private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        msg = f"{key_path}: not an unencrypted PEM private key ({exc})"
        raise KeyFileError(msg) from exc
    if not isinstance(private, Ed25519PrivateKey):
        msg = f"{key_path}: private key is {type(private).__name__}, expected {ALGORITHM}"
        raise KeyFileError(msg)
    return Signer(info, private)
