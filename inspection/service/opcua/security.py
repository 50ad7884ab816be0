"""OPC UA security: users (salted scrypt hashes), the asyncua user manager, self-signed certificates.

* **Users.** A user file holds one ``name:scrypt$N$r$p$<salt>$<hash>`` line per user (base64 salt
  and hash; ``#`` starts a comment), written by ``weldinspect opcua passwd``. One more user can come
  from the environment (``--username U --password-env VAR``); its password is hashed in memory the
  same way. Plain passwords are never accepted on the command line or stored.
* **Anonymous** sessions are refused unless the server is started with ``allow_anonymous``.
* **Certificates.** :func:`make_certificates` writes a self-signed server certificate + key and a
  client certificate + key (RSA 2048, SHA-256: what Basic256Sha256 needs) for
  ``weldinspect opcua certs``; :func:`ensure_server_certificate` makes the server's on first start.
  Private keys are written with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from asyncua.crypto.permission_rules import User, UserRole

logger = logging.getLogger(__name__)

USER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
"""A user name: 1-64 letters, digits, ``. _ @ -``, starting with a letter or digit."""
MIN_PASSWORD: Final = 8
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32

SERVER_APP_URI: Final = "urn:weldinspect:opcua:server"
CLIENT_APP_URI: Final = "urn:weldinspect:opcua:client"
SERVER_CERT: Final = "server_cert.der"
SERVER_KEY: Final = "server_key.pem"
CLIENT_CERT: Final = "client_cert.der"
CLIENT_KEY: Final = "client_key.pem"
CERT_DAYS: Final = 825


class UserFileError(ValueError):
    """A user file or user name/password that cannot be used; the message names the file and line."""


# ---- passwords ------------------------------------------------------------------------------------


def check_user_name(name: str) -> str:
    if not re.fullmatch(USER_PATTERN, name):
        msg = f"user name {name!r} is not valid; use 1-64 letters, digits, . _ @ - (starting alphanumeric)"
        raise UserFileError(msg)
    return name


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` of ``password`` with a new random salt (or ``salt``)."""
    if len(password) < MIN_PASSWORD:
        msg = f"password has {len(password)} characters; at least {MIN_PASSWORD} are required"
        raise UserFileError(msg)
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_HASH_BYTES
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        msg = "password hash must be scrypt$N$r$p$<salt base64>$<hash base64>"
        raise UserFileError(msg)
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError as exc:
        msg = f"password hash has a bad number or base64 field ({exc})"
        raise UserFileError(msg) from exc
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or not salt or not digest:
        msg = (
            "password hash has invalid scrypt parameters "
            "(N a power of two >= 1024, 1 <= r <= 64, 1 <= p <= 16)"
        )
        raise UserFileError(msg)
    return n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the ``scrypt$...`` hash ``encoded`` (constant-time compare)."""
    n, r, p, salt, digest = _parse_hash(encoded)
    got = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(digest),
        maxmem=256 * 1024 * 1024,
    )
    return hmac.compare_digest(got, digest)


def read_user_file(path: Path) -> dict[str, str]:
    """The users of ``path``: name -> hash. :class:`UserFileError` names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = (
            f"user file {path}: cannot read it ({exc.strerror or exc}); "
            "create it with 'weldinspect opcua passwd'"
        )
        raise UserFileError(msg) from exc
    users: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        where = f"user file {path}, line {lineno}"
        if not sep:
            msg = f"{where}: expected name:scrypt$N$r$p$<salt>$<hash>"
            raise UserFileError(msg)
        try:
            check_user_name(name)
            _parse_hash(encoded)
        except UserFileError as exc:
            raise UserFileError(f"{where}: {exc}") from exc
        if name in users:
            msg = f"{where}: user {name!r} appears twice"
            raise UserFileError(msg)
        users[name] = encoded
    if not users:
        msg = f"user file {path} holds no users; add one with 'weldinspect opcua passwd --user-file {path}'"
        raise UserFileError(msg)
    return users


def set_user(path: Path, name: str, password: str) -> bool:
    """Add or replace ``name`` in the user file ``path`` (created with mode 0600); True when new."""
    check_user_name(name)
    encoded = hash_password(password)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    out: list[str] = []
    found = False
    for line in lines:
        if line.strip().partition(":")[0] == name and not line.lstrip().startswith("#"):
            out.append(f"{name}:{encoded}")
            found = True
        else:
            out.append(line)
    if not found:
        out.append(f"{name}:{encoded}")
    _write_private(path, ("\n".join(out) + "\n").encode("utf-8"))
    return not found


class UserManager:
    """asyncua user manager: password users from :func:`read_user_file` / the environment.

    Every accepted user gets asyncua's ``User`` role (read, browse, call methods; no address-space
    changes). Anonymous sessions get it only when ``allow_anonymous``.
    """

    def __init__(self, users: Mapping[str, str], *, allow_anonymous: bool = False) -> None:
        self._users = dict(users)
        self.allow_anonymous = allow_anonymous

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._users)

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is None and password is None:
            return User(role=UserRole.User, name="anonymous") if self.allow_anonymous else None
        encoded = self._users.get(username or "")
        if encoded is None or password is None:
            logger.warning("OPC UA login refused: unknown user %r", username)
            return None
        if not verify_password(password, encoded):
            logger.warning("OPC UA login refused: wrong password for user %r", username)
            return None
        return User(role=UserRole.User, name=username)


# ---- certificates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _make_pair(
    pair: CertPair, *, app_uri: str, common_name: str, server: bool, hosts: tuple[str, ...]
) -> None:
    from asyncua.crypto.cert_gen import (
        dump_private_key_as_pem,
        generate_private_key,
        generate_self_signed_app_certificate,
    )
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = generate_private_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = generate_self_signed_app_certificate(
        key, common_name, {"organizationName": "weldinspect"}, names, extended=use, days=CERT_DAYS
    )
    _write_private(pair.key, dump_private_key_as_pem(key))
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    pair.cert.write_bytes(cert.public_bytes(Encoding.DER))


def default_hosts() -> tuple[str, ...]:
    """The names a server certificate covers by default: this host's name, localhost, 127.0.0.1, ::1."""
    return tuple(dict.fromkeys((socket.gethostname(), "localhost", "127.0.0.1", "::1")))


def server_pair(directory: Path) -> CertPair:
    return CertPair(directory / SERVER_CERT, directory / SERVER_KEY)


def client_pair(directory: Path) -> CertPair:
    return CertPair(directory / CLIENT_CERT, directory / CLIENT_KEY)


def make_certificates(
    out: Path, *, hosts: tuple[str, ...] | None = None, force: bool = False
) -> tuple[CertPair, CertPair]:
    """Write a self-signed server and client certificate + key into ``out``; (server, client).

    Refuses (:class:`FileExistsError` naming the file) to overwrite unless ``force``.
    """
    server, client = server_pair(out), client_pair(out)
    if not force:
        for path in (server.cert, server.key, client.cert, client.key):
            if path.exists():
                msg = f"{path} exists; pass --force to replace the certificates in {out}"
                raise FileExistsError(msg)
    hosts = hosts or default_hosts()
    _make_pair(
        server, app_uri=SERVER_APP_URI, common_name="weldinspect OPC UA server", server=True, hosts=hosts
    )
    _make_pair(
        client, app_uri=CLIENT_APP_URI, common_name="weldinspect OPC UA client", server=False, hosts=hosts
    )
    return server, client


def ensure_server_certificate(
    directory: Path, *, hosts: tuple[str, ...] | None = None
) -> tuple[CertPair, bool]:
    """The server certificate + key in ``directory``, made (self-signed) when both are missing.

    Returns the pair and whether it was made now. Only one of the two present is an error (a
    :class:`FileNotFoundError` naming the missing file), never silently replaced.
    """
    pair = server_pair(directory)
    have_cert, have_key = pair.cert.is_file(), pair.key.is_file()
    if have_cert and have_key:
        return pair, False
    if have_cert != have_key:
        missing = pair.key if have_cert else pair.cert
        msg = f"{missing} is missing but its partner exists; restore it, or remove both to make new ones"
        raise FileNotFoundError(msg)
    _make_pair(
        pair,
        app_uri=SERVER_APP_URI,
        common_name="weldinspect OPC UA server",
        server=True,
        hosts=hosts or default_hosts(),
    )
    return pair, True


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of a DER certificate file, as colon-separated hex (what clients show to trust it)."""
    digest = hashlib.sha256(cert_path.read_bytes()).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
