"""Where and how the adapter connects: broker URL, TLS files, credentials and the session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SCHEMES = {"mqtt": (1883, False), "mqtts": (8883, True)}
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True)
class BrokerConfig:
    """Connection settings of the adapter's MQTT v5 client.

    * ``host`` / ``port``; ``tls``: connect with TLS (``mqtts://``, or any ``tls_*`` file given);
    * ``tls_ca``: CA bundle that signed the broker's certificate (None = the system's);
      ``tls_cert`` / ``tls_key``: client certificate and key (both or neither);
    * ``username`` / ``password``: broker credentials (password None = username only);
    * ``client_id``: FIXED per station, so the broker keeps the session (subscription and
      unacknowledged messages) while the adapter is down; ``session_expiry_s``: how long it keeps it;
    * ``keepalive_s``; ``receive_maximum``: unacknowledged messages the broker may send at once.
    """

    host: str
    port: int
    client_id: str
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    username: str | None = None
    password: str | None = None
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    keepalive_s: int = 30
    receive_maximum: int = 8

    def __post_init__(self) -> None:
        if not self.host:
            msg = "broker host must not be empty"
            raise ValueError(msg)
        if not 0 < self.port < 65536:
            msg = f"broker port must be 1-65535, got {self.port}"
            raise ValueError(msg)
        if not self.client_id or len(self.client_id) > 128:
            msg = f"client id must be 1-128 characters, got {self.client_id!r}"
            raise ValueError(msg)
        if (self.tls_cert is None) != (self.tls_key is None):
            msg = "give both --tls-cert and --tls-key (a client certificate needs its key), or neither"
            raise ValueError(msg)
        for name in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                msg = f"{name.replace('_', '-')} {path} is not a file"
                raise ValueError(msg)
        if self.password is not None and self.username is None:
            msg = "a broker password needs a username (--username)"
            raise ValueError(msg)
        for name, low in (("session_expiry_s", 0), ("keepalive_s", 5), ("receive_maximum", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                msg = f"BrokerConfig.{name} must be an integer >= {low}, got {value!r}"
                raise ValueError(msg)

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.uses_tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` -> ``(host, port, tls)``; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        msg = f"broker URL {url!r} must start with mqtt:// or mqtts://, e.g. mqtt://127.0.0.1:1883"
        raise ValueError(msg)
    if parts.path not in ("", "/") or parts.query or parts.username or parts.password:
        msg = (
            f"broker URL {url!r} must be only scheme, host and port "
            "(credentials go in --username / --password-env)"
        )
        raise ValueError(msg)
    default_port, tls = SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        msg = f"broker URL {url!r} has an invalid port: {exc}"
        raise ValueError(msg) from exc
    if not parts.hostname:
        msg = f"broker URL {url!r} has no host, e.g. mqtt://127.0.0.1:1883"
        raise ValueError(msg)
    return parts.hostname, port, tls
