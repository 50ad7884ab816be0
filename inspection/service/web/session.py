"""Dashboard sessions: a signed, stateless session cookie and per-session CSRF tokens.

The login form takes an API key; the key is checked with the service's
:func:`inspection.service.auth.authenticate` and then **never stored**: the session cookie holds
``v1.<sha256 of the key>.<nonce>.<expiry unix s>.<signature>``, signed by ``itsdangerous.Signer``
(HMAC-SHA256 under a key derived from the server secret and the salt :data:`SESSION_SALT`; the
signature in URL-safe base64). The expiry is the token's own field, compared with the caller's
``now``. Every request looks the key hash up among the *active* keys again, so revoking a key ends
its sessions at once. The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui`` and ``Secure``
when configured (or, by default, when the request came over HTTPS).

CSRF: every form carries a hidden ``csrf_token`` = HMAC-SHA256(secret, ``csrf:`` + session nonce)
in hex, checked on every POST (constant-time). The login form, which has no session yet, uses a
double-submit token: a random nonce in a short-lived ``wi_login`` cookie and
HMAC(secret, ``login:`` + nonce) in the form. ``SameSite=Strict`` on both cookies is the second
layer. These two tokens are keyed hashes of a nonce that are only compared, never parsed back into
data, so they stay on the standard library's ``hmac`` (the session signer's derived key differs
from the raw secret, so the two never produce each other's values).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "wi_session"
LOGIN_COOKIE = "wi_login"
COOKIE_PATH = "/ui"
LOGIN_TTL_S = 3600
SESSION_SALT = "weldinspect.dashboard.session.v1"
"""Salt of the session signer: a signature made for anything else under the same secret never fits."""
MAX_TOKEN_CHARS = 256
_BODY_RE = re.compile(r"^v1\.([0-9a-f]{64})\.([A-Za-z0-9_-]{16,64})\.([0-9]{1,12})$")


@dataclass(frozen=True)
class SessionData:
    """A verified session: the API key's SHA-256 (hex), a random nonce, the expiry (unix seconds)."""

    key_hash: str
    nonce: str
    expires: int


class SessionCodec:
    """Issues and verifies session tokens and CSRF tokens under one secret (>= 32 bytes)."""

    def __init__(self, secret: bytes, *, ttl_s: int = 12 * 3600) -> None:
        if len(secret) < 32:
            msg = f"session secret must be at least 32 bytes, got {len(secret)}"
            raise ValueError(msg)
        if ttl_s < 60:
            msg = f"session ttl must be >= 60 s, got {ttl_s}"
            raise ValueError(msg)
        self._secret = secret
        self._signer = Signer(secret, salt=SESSION_SALT, key_derivation="hmac", digest_method=hashlib.sha256)
        self.ttl_s = ttl_s

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, key_hash: str, now: float) -> str:
        """A new session token for the key with SHA-256 ``key_hash``, valid ``ttl_s`` from ``now``."""
        if not re.fullmatch(r"[0-9a-f]{64}", key_hash):
            msg = f"key_hash must be 64 lower-case hex characters, got {key_hash!r}"
            raise ValueError(msg)
        body = f"v1.{key_hash}.{secrets.token_urlsafe(24)}.{int(now) + self.ttl_s}"
        return self._signer.sign(body).decode("ascii")

    def read(self, token: str | None, now: float) -> SessionData | None:
        """The session of a well-formed, correctly signed, unexpired token; None otherwise."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            body = self._signer.unsign(token).decode("utf-8")
        except (BadSignature, UnicodeError):
            return None
        m = _BODY_RE.match(body)
        if m is None:
            return None
        expires = int(m.group(3))
        if expires <= now:
            return None
        return SessionData(m.group(1), m.group(2), expires)

    def csrf_token(self, session: SessionData) -> str:
        """The CSRF token of a session (the same for the session's whole life)."""
        return self._mac(f"csrf:{session.nonce}")

    def check_csrf(self, session: SessionData, token: str | None) -> bool:
        """Whether ``token`` is the session's CSRF token (constant-time)."""
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))

    def login_token(self, nonce: str) -> str:
        """The login form's token for the nonce held in the login cookie."""
        return self._mac(f"login:{nonce}")

    def check_login(self, nonce: str | None, token: str | None) -> bool:
        """Whether the login form's token matches the login cookie's nonce."""
        return bool(nonce) and bool(token) and hmac.compare_digest(self.login_token(str(nonce)), str(token))


def new_nonce() -> str:
    """A random URL-safe nonce (32 characters)."""
    return secrets.token_urlsafe(24)


def secure_flag(request: Request, configured: bool | None) -> bool:
    """``configured`` when set, else whether the request came over HTTPS."""
    return request.url.scheme == "https" if configured is None else configured


def set_cookie(response: Response, name: str, value: str, *, max_age: int, secure: bool) -> None:
    """Set an ``HttpOnly; SameSite=Strict; Path=/ui`` cookie (``Secure`` when ``secure``)."""
    response.set_cookie(
        name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure
    )


def clear_cookie(response: Response, name: str, *, secure: bool) -> None:
    """Delete a cookie set by :func:`set_cookie`."""
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)
