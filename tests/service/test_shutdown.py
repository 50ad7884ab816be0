"""Graceful shutdown: SIGTERM while an upload is in flight still answers it (and commits it) before exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inspection.evidence.keys import init_key
from inspection.service.auth import add_key
from inspection.store import Store
from tests.service.helpers import STATION_META, seam_jpeg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("server did not become ready")


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path, tiny_model_dir: Path) -> None:
    init_key(tmp_path / "keys", station_id="st")
    with Store.open(f"sqlite:///{tmp_path / 'weldinspect.db'}", tmp_path / "images") as store:
        key, _ = add_key(store, "S1", "station", "S1")
    port = _free_port()
    cmd = [
        sys.executable,
        "-c",
        "from inspection.cli import main; main()",
        "serve",
        "--home",
        str(tmp_path),
        "--port",
        str(port),
        "--model",
        str(tiny_model_dir),
    ]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        boundary = "wi-boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            f"{json.dumps(STATION_META)}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        image = seam_jpeg(1)
        body = head + image + f"\r\n--{boundary}--\r\n".encode()
        half = len(head) + len(image) // 2
        sent_half = threading.Event()

        def slow_body() -> Iterator[bytes]:
            yield body[:half]
            sent_half.set()
            time.sleep(1.5)  # SIGTERM arrives while the request body is still coming in
            yield body[half:]

        answer: dict[str, object] = {}

        def send() -> None:
            try:
                r = httpx.post(
                    f"{base}/v1/inspections",
                    content=slow_body(),
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(len(body)),
                    },
                    timeout=30.0,
                )
                answer["status"], answer["body"] = r.status_code, r.json()
            except httpx.HTTPError as exc:
                answer["error"] = repr(exc)

        thread = threading.Thread(target=send)
        thread.start()
        assert sent_half.wait(10)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        assert answer.get("status") == 201, answer
        # uvicorn drains, runs the lifespan shutdown, then re-raises SIGTERM (exit -15) or exits 0.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
    with Store.open(f"sqlite:///{tmp_path / 'weldinspect.db'}", tmp_path / "images") as store:
        body_id = answer["body"]["id"]  # type: ignore[index]
        assert store.get_inspection(str(body_id)) is not None
