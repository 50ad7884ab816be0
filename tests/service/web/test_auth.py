"""Dashboard login, sessions, roles and CSRF (FastAPI TestClient)."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from itsdangerous import Signer

from inspection.service.web.session import LOGIN_COOKIE, SESSION_COOKIE, SessionCodec, secure_flag
from tests.service.helpers import Keys
from tests.service.web.helpers import LOGIN_RE, csrf, login

PAGES = ("/ui/inspections", "/ui/reviews", "/ui/machines", "/ui/machines/M-1", "/ui/evidence")


@pytest.mark.parametrize("path", PAGES)
def test_no_cookie_redirects_to_login_with_next(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/login?next=")
    assert path.replace("/", "%2F") in r.headers["location"]


def test_forged_or_garbage_cookie_redirects(client: TestClient, web_keys: Keys) -> None:
    assert login(client, web_keys.auditor).status_code == 303
    token = client.cookies[SESSION_COOKIE]
    body, sig = token.rsplit(".", 1)
    mid = len(sig) // 2  # not the last character: its low bits are base64 padding
    forged = f"{body}.{sig[:mid]}{'A' if sig[mid] != 'A' else 'B'}{sig[mid + 1 :]}"
    for value in (forged, "garbage", token.replace("v1.", "v2."), f"{body}.", body):
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, value, path="/ui")
        assert client.get("/ui/inspections", follow_redirects=False).status_code == 303


def test_wrong_key_is_refused_and_sets_no_session(client: TestClient) -> None:
    r = login(client, "wik_not-a-real-key")
    assert r.status_code == 401
    assert "Invalid or revoked API key" in r.text
    assert SESSION_COOKIE not in client.cookies


def test_login_without_the_login_token_is_refused(client: TestClient, web_keys: Keys) -> None:
    client.get("/ui/login")
    r = client.post("/ui/login", data={"api_key": web_keys.auditor, "login_token": "0" * 64})
    assert r.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def test_login_sets_a_strict_httponly_cookie_without_the_key(client: TestClient, web_keys: Keys) -> None:
    r = login(client, web_keys.auditor)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/inspections"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in session
    assert "samesite=strict" in session.lower()
    assert "Path=/ui" in session
    assert "Secure" not in session  # plain http test server: Secure follows the scheme by default
    assert web_keys.auditor not in session
    assert client.get("/ui/inspections").status_code == 200


def test_login_redirects_only_to_local_dashboard_paths(client: TestClient, web_keys: Keys) -> None:
    page = client.get("/ui/login", params={"next": "https://evil.example/x"})
    m = LOGIN_RE.search(page.text)
    assert m is not None
    r = client.post(
        "/ui/login",
        data={"api_key": web_keys.admin, "login_token": m.group(1), "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/inspections"


@pytest.mark.parametrize("token", [None, "", "0" * 64])
def test_post_without_the_right_csrf_token_is_403(
    client: TestClient, web_keys: Keys, seeded: list[str], token: str | None
) -> None:
    login(client, web_keys.auditor)
    data = {"porosity_grade": "1", "spatter_grade": "0"}
    if token is not None:
        data["csrf_token"] = token
    before = client.get(f"/ui/inspections/{seeded[1]}").text.count("evidence #")
    r = client.post(f"/ui/inspections/{seeded[1]}/review", data=data, follow_redirects=False)
    assert r.status_code == 403
    assert "security token" in r.text
    assert client.get(f"/ui/inspections/{seeded[1]}").text.count("evidence #") == before  # nothing recorded
    r = client.post("/ui/logout", data={} if token is None else {"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403


def test_csrf_token_of_another_session_is_refused(
    client: TestClient, web_keys: Keys, seeded: list[str]
) -> None:
    login(client, web_keys.auditor)
    other = csrf(client)
    client.cookies.clear()
    login(client, web_keys.auditor)
    assert csrf(client) != other
    r = client.post(
        f"/ui/inspections/{seeded[1]}/review",
        data={"csrf_token": other, "porosity_grade": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_logout_clears_the_session(client: TestClient, web_keys: Keys) -> None:
    login(client, web_keys.auditor)
    r = client.post("/ui/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login"
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/ui/inspections", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_sessions(client: TestClient, web_keys: Keys, web_settings: object) -> None:
    from inspection.service.auth import add_key, revoke_key
    from inspection.store import Store

    with Store.open(web_settings.db_url, web_settings.images_dir) as store:  # type: ignore[attr-defined]
        key, _ = add_key(store, "short-lived", "auditor")
        login(client, key)
        assert client.get("/ui/inspections").status_code == 200
        revoke_key(store, "short-lived")
    assert client.get("/ui/inspections", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("s1", "/ui/inspections", 200),
        ("s1", "/ui/machines", 200),
        ("s1", "/ui/reviews", 403),
        ("s1", "/ui/evidence", 403),
        ("s1", "/ui/reviews/export.jsonl", 403),
        ("auditor", "/ui/reviews", 200),
        ("auditor", "/ui/evidence", 200),
        ("admin", "/ui/reviews", 200),
    ],
)
def test_role_access(client: TestClient, web_keys: Keys, role: str, path: str, status: int) -> None:
    login(client, getattr(web_keys, role))
    assert client.get(path).status_code == status


def test_station_sees_only_its_own_inspections(client: TestClient, web_keys: Keys, seeded: list[str]) -> None:
    login(client, web_keys.s2)
    page = client.get("/ui/inspections", params={"station": "S1"}).text
    own = [i for n, i in enumerate(seeded) if n % 3 == 0]  # seed(): every third upload is S2's
    others = [i for n, i in enumerate(seeded) if n % 3 != 0]
    assert all(i in page for i in own)
    assert not any(i in page for i in others)
    assert client.get(f"/ui/inspections/{others[0]}").status_code == 404
    assert client.get(f"/ui/inspections/{others[0]}/image").status_code == 404
    assert client.get(f"/ui/inspections/{own[0]}/image").status_code == 200


def test_station_cannot_review(client: TestClient, web_keys: Keys, seeded: list[str]) -> None:
    login(client, web_keys.s2)
    token = csrf(client)
    r = client.post(f"/ui/inspections/{seeded[0]}/review", data={"csrf_token": token, "porosity_grade": "2"})
    assert r.status_code == 403
    assert "auditor or admin" in r.text


def test_session_codec_rejects_expired_and_tampered_tokens() -> None:
    codec = SessionCodec(b"k" * 32, ttl_s=60)
    token = codec.issue("a" * 64, now=1000.0)
    data = codec.read(token, now=1059.0)
    assert data is not None and data.key_hash == "a" * 64
    assert codec.read(token, now=1060.0) is None  # expired
    assert codec.read(token.replace("a" * 64, "b" * 64), now=1000.0) is None  # other key, same mac
    assert SessionCodec(b"x" * 32).read(token, now=1000.0) is None  # other secret
    body = token.rsplit(".", 1)[0]
    other_salt = Signer(b"k" * 32, salt="other", key_derivation="hmac", digest_method=hashlib.sha256)
    assert codec.read(other_salt.sign(body).decode(), now=1000.0) is None  # same secret, other purpose
    assert codec.read(f"{body}.{codec.csrf_token(data)}", now=1000.0) is None  # a CSRF token is no signature
    assert codec.read(token + "A" * 300, now=1000.0) is None  # over the length limit
    assert codec.check_csrf(data, codec.csrf_token(data))
    assert not codec.check_csrf(data, codec.login_token(data.nonce))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SessionCodec(b"short")


@pytest.mark.parametrize(
    ("scheme", "configured", "expected"),
    [("http", None, False), ("https", None, True), ("http", True, True), ("https", False, False)],
)
def test_secure_flag_follows_the_scheme_unless_configured(
    scheme: str, configured: bool | None, expected: bool
) -> None:
    from starlette.requests import Request

    request = Request(
        {"type": "http", "scheme": scheme, "path": "/ui/login", "headers": [], "server": ("h", 1)}
    )
    assert secure_flag(request, configured) is expected


def test_secure_cookies_true_marks_the_session_cookie_secure(web_settings: object, web_keys: Keys) -> None:
    from fastapi import FastAPI

    from inspection.service.web import create_ui_router

    app = FastAPI()
    app.include_router(create_ui_router(secure_cookies=True))
    app.state.service = None
    with TestClient(app, base_url="https://testserver") as c:
        r = c.get("/ui/login")
        assert r.status_code == 200
        login_cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(LOGIN_COOKIE))
        assert "Secure" in login_cookie


def test_a_post_without_session_redirects_to_login_without_replaying_it(
    client: TestClient, seeded: list[str]
) -> None:
    r = client.post(
        f"/ui/inspections/{seeded[0]}/review", data={"porosity_grade": "1"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Finspections"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/ui/static/ui.css", 200), ("/ui/static/ui.js", 200), ("/ui/static/..%2Frouter.py", 404),
     ("/ui/static/nope.css", 404)],
)  # fmt: skip
def test_static_files_need_no_login_and_stay_in_their_folder(
    client: TestClient, path: str, status: int
) -> None:
    assert client.get(path).status_code == status


@pytest.mark.parametrize("path", ["/ui", "/ui/"])
def test_root_redirects_to_the_inspections(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/inspections"
