"""API keys: generation, hashing, lookup and role checks.

A key is ``wik_`` + 43 URL-safe characters (32 random bytes, 256 bits). Only its SHA-256 (hex) is
stored (``api_keys.key_hash``); a plain hash is enough for a key of this entropy (no dictionary to
attack). A request presents the key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the
service hashes it, looks the hash up among the active keys and compares the stored hash with
:func:`hmac.compare_digest` (constant time).

Roles (``api_keys.role``):

* ``station``: submit inspections (for its own ``station_id`` only) and read its own inspections;
* ``auditor``: read every inspection, machine trends, sign reviews, export claim bundles;
* ``admin``: everything, including managing keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from inspection.store import ApiKeyInfo, Store

KEY_PREFIX = "wik_"
ROLES = ("station", "auditor", "admin")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
"""Valid API key names (1-128 of letters, digits, ``_ . : -``, starting alphanumeric)."""
_NAME_RE = re.compile(NAME_PATTERN)


class AuthError(Exception):
    """Authentication failed (HTTP 401); the message says what was missing or wrong."""


class ForbiddenError(Exception):
    """Authenticated but not allowed (HTTP 403); the message names the role needed."""


def generate_key() -> str:
    """A new random API key (``wik_`` + 43 URL-safe characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hex SHA-256 of the key's UTF-8 bytes (what the store keeps)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name, role and (for stations) station id."""

    name: str
    role: str
    station_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            msg = f"unknown role {self.role!r}; valid: {', '.join(ROLES)}"
            raise ValueError(msg)

    @property
    def sees_all(self) -> bool:
        """Auditors and admins read every station's inspections."""
        return self.role in ("auditor", "admin")

    def can_read(self, station_id: str | None) -> bool:
        """Whether this principal may read an inspection made at ``station_id``."""
        return self.sees_all or (self.station_id is not None and station_id == self.station_id)


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str:
    """The presented key from ``Authorization: Bearer`` or ``X-API-Key``; :class:`AuthError` if none."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            msg = "Authorization header must be 'Bearer <api key>'"
            raise AuthError(msg)
        return value.strip()
    msg = "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    raise AuthError(msg)


def authenticate(store: Store, key: str) -> Principal:
    """The principal of an active key; :class:`AuthError` for an unknown or revoked key."""
    digest = hash_key(key)
    info = store.find_api_key(digest)
    if info is None or not hmac.compare_digest(info.key_hash, digest):
        msg = "invalid or revoked API key"
        raise AuthError(msg)
    return Principal(info.name, info.role, info.station_id)


def require_role(principal: Principal, *roles: str) -> Principal:
    """Return ``principal`` if its role is one of ``roles`` (admin always passes), else 403."""
    if principal.role == "admin" or principal.role in roles:
        return principal
    msg = f"key {principal.name!r} has role {principal.role!r}; this needs one of: {', '.join(roles)}"
    raise ForbiddenError(msg)


# ---- key management (CLI and admin endpoints) ----------------------------------------------------


def check_key_request(name: str, role: str, station_id: str | None) -> None:
    """Validate a new key's name, role and station id (ValueError naming what is valid)."""
    if not _NAME_RE.fullmatch(name):
        msg = f"key name {name!r} is invalid; use 1-128 of letters, digits, _ . : - (starting alphanumeric)"
        raise ValueError(msg)
    if role not in ROLES:
        msg = f"unknown role {role!r}; valid: {', '.join(ROLES)}"
        raise ValueError(msg)
    if role == "station" and not station_id:
        msg = "a station key needs --station-id (the station whose inspections it submits and reads)"
        raise ValueError(msg)


def active_key_named(store: Store, name: str) -> ApiKeyInfo | None:
    """The active key called ``name``, or None."""
    return next((k for k in store.list_api_keys() if k.name == name and k.active), None)


def add_key(store: Store, name: str, role: str, station_id: str | None = None) -> tuple[str, ApiKeyInfo]:
    """Create a key; returns ``(plain key, info)``. The plain key is never stored: show it once.

    Refuses (ValueError) a name that an active key already has.
    """
    check_key_request(name, role, station_id)
    if active_key_named(store, name) is not None:
        msg = f"an active API key named {name!r} exists; revoke it first or choose another name"
        raise ValueError(msg)
    key = generate_key()
    info = store.add_api_key(name, role, hash_key(key), station_id=station_id if role == "station" else None)
    return key, info


def revoke_key(store: Store, name: str) -> ApiKeyInfo:
    """Revoke the active key called ``name``; LookupError naming the active keys when there is none."""
    info = active_key_named(store, name)
    if info is None:
        names = sorted(k.name for k in store.list_api_keys() if k.active)
        msg = f"no active API key named {name!r}; active keys: {', '.join(names) or '(none)'}"
        raise LookupError(msg)
    store.revoke_api_key(info.id)
    return info
