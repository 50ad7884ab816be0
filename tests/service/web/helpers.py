"""Helpers for the dashboard tests: a seeded service, logging in through the form, CSRF tokens."""

from __future__ import annotations

import re
from typing import Any

from tests.service.helpers import STATION_META, seam_jpeg, upload

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
LOGIN_RE = re.compile(r'name="login_token" value="([0-9a-f]{64})"')

SEED_PARAMS = (
    {"power_w": 2000.0, "speed_mm_s": 40.0},
    {"power_w": 2000.0, "speed_mm_s": 40.0},
    {"power_w": 1800.0, "speed_mm_s": 40.0},
    {"power_w": 1800.0, "speed_mm_s": 45.0},
)


def seed(client: Any, keys: Any, n: int = 6) -> list[str]:
    """Upload ``n`` synthetic inspections (stations S1 and S2, machines M-1 and M-2); their ids."""
    ids = []
    for i in range(n):
        key = keys.s1 if i % 3 else keys.s2
        meta = {
            **STATION_META,
            "machine_serial": "M-1" if i % 2 == 0 else "M-2",
            "part_id": f"P-{i}",
            "params": SEED_PARAMS[i % len(SEED_PARAMS)],
        }
        r = upload(client, key, seam_jpeg(100 + i), meta)
        if r.status_code != 201:
            msg = f"seeding upload {i} failed: {r.status_code} {r.text}"
            raise RuntimeError(msg)
        ids.append(r.json()["id"])
    return ids


def login(client: Any, key: str) -> Any:
    """Log in through the form (GET for the token, POST the key); the POST's response."""
    page = client.get("/ui/login")
    token = LOGIN_RE.search(page.text)
    if token is None:
        msg = "no login token on the login page"
        raise AssertionError(msg)
    return client.post(
        "/ui/login", data={"api_key": key, "login_token": token.group(1)}, follow_redirects=False
    )


def csrf(client: Any, path: str = "/ui/inspections") -> str:
    """The CSRF token from a page's forms (needs a logged-in client)."""
    m = CSRF_RE.search(client.get(path).text)
    if m is None:
        msg = f"no CSRF token on {path}"
        raise AssertionError(msg)
    return m.group(1)
