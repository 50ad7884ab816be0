"""kill -9 of ``weldinspect serve`` while stations upload, on SQLite and on PostgreSQL.

A station may lose its connection at any moment: the server is SIGKILLed (no handler runs, no
drain) while four client threads upload photos back to back, each with its own Idempotency-Key.
The server is started again on the same store and every request that got no answer is sent again
with the same key and the same photo, as a station does. Three kills per backend. Then:

* every request answered 201 or 200 (before a kill or by a retry) has its evidence record in the
  ledger, with the record hash of the answer (no accepted record lost);
* one inspection per Idempotency-Key: the ledger holds exactly the inspections that were answered,
  each once, and the store maps each key to the inspection its answer named (no duplicates, also
  when the kill fell between the commit and the answer: the retry then gets 200);
* ``weldinspect evidence verify`` exits 0 (no torn or half-written record, images intact).

PostgreSQL runs in a throwaway database of its own (created and dropped here), or is skipped loudly.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from inspection.evidence.keys import init_key
from inspection.evidence.ledger import KIND_INSPECTION, iter_records
from inspection.service.auth import add_key
from inspection.store import Store
from tests.reliability.api_support import throwaway_database
from tests.service.helpers import STATION_META, seam_jpeg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STATION = "KILL-ST"
CLIENTS = 4
KILLS = 3
PHOTOS = [seam_jpeg(seed) for seed in range(8)]
WEBLOG = "server.log"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from inspection.cli import main; main()", *args]


@dataclass
class Book:
    """What the stations sent and what they were told (shared by the client threads under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    photo: dict[str, bytes] = field(default_factory=dict)  # idempotency key -> photo sent
    answered: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # key -> (status, id, hash)
    unanswered: set[str] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)
    cut_off: list[int] = field(default_factory=list)  # requests without an answer at each kill
    cut_mid: int = 0  # requests the kill cut off after they reached the server (not refused)
    retried: Counter[int] = field(default_factory=Counter)  # retry answers by status


class Server:
    """``weldinspect serve`` in a subprocess on a free loopback port (tiny model, given store)."""

    def __init__(self, home: Path, db_url: str, model: Path) -> None:
        self.home, self.db_url, self.model = home, db_url, model
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        cmd = _cli("serve", "--home", str(self.home), "--db", self.db_url, "--port", str(port),
                   "--model", str(self.model), "--slots", "2")  # fmt: skip
        with (self.home / WEBLOG).open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120.0  # model load on a busy machine; not a speed assertion
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server did not become ready:\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self) -> str:
        return (self.home / WEBLOG).read_text(errors="replace")[-3000:]


def _post(client: httpx.Client, key: str, idem: str, photo: bytes) -> httpx.Response:
    return client.post(
        "/v1/inspections",
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
        files={"image": ("seam.jpg", photo, "image/jpeg")},
        data={"metadata": _meta(idem)},
    )


def _meta(idem: str) -> str:
    return json.dumps({**STATION_META, "part_id": f"P-{idem[:8]}"})


def _note(book: Book, idem: str, r: httpx.Response, expect: tuple[int, ...]) -> None:
    """Book an answer (under ``book.lock``)."""
    if r.status_code in expect:
        body = r.json()
        book.answered[idem] = (r.status_code, str(body["id"]), str(body["evidence"]["record_hash"]))
        book.unanswered.discard(idem)
    else:
        book.unexpected.append(f"{idem}: {r.status_code} {r.text[:200]}")
        book.unanswered.discard(idem)


def _station(worker: int, base: str, key: str, book: Book, stop: threading.Event) -> None:
    """Upload back to back, a new key each time, until the server goes away (or ``stop``)."""
    rng = np.random.default_rng(worker)
    with httpx.Client(base_url=base, timeout=60.0) as client:
        while not stop.is_set():
            idem = uuid.uuid4().hex
            photo = PHOTOS[int(rng.integers(0, len(PHOTOS)))]
            with book.lock:
                book.photo[idem] = photo
                book.unanswered.add(idem)
            try:
                r = _post(client, key, idem, photo)
            except httpx.HTTPError as exc:  # killed: stays unanswered, retried after the restart
                if not isinstance(exc, httpx.ConnectError):
                    with book.lock:
                        book.cut_mid += 1
                return
            with book.lock:
                _note(book, idem, r, (201,))


def _retry_unanswered(base: str, key: str, book: Book) -> None:
    """Send every unanswered request again with its key and photo: 201 (not committed before the
    kill) or 200 (committed, the answer was lost) are the only right answers."""
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for idem in sorted(book.unanswered):
            r = _post(client, key, idem, book.photo[idem])
            book.retried[r.status_code] += 1
            _note(book, idem, r, (200, 201))


def _upload_and_kill(server: Server, key: str, book: Book, rng: np.random.Generator) -> None:
    """Stations upload until some answers arrived, then SIGKILL the server mid-stream."""
    with book.lock:
        before = len(book.answered)
    target = before + int(rng.integers(4, 16))
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_station, args=(CLIENTS * len(book.cut_off) + i, server.base, key, book, stop)
        )
        for i in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            with book.lock:
                if len(book.answered) >= target or book.unexpected:
                    break
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 0.05)))  # land at a different point of the request each time
        server.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    book.cut_off.append(len(book.unanswered))


def _ledger(
    db_url: str, images: Path, keys: list[str]
) -> tuple[Counter[str], dict[str, str], dict[str, str | None]]:
    """(records per inspection id, record hash per id, inspection id per idempotency key) of STATION."""
    per_id: Counter[str] = Counter()
    hashes: dict[str, str] = {}
    with Store.open(db_url, images, migrate_db=False) as store:
        with store.session() as s:
            for rec in iter_records(s):
                if rec.kind != KIND_INSPECTION:
                    continue
                if (rec.data.get("context") or {}).get("station_id") != STATION:
                    continue
                iid = str(rec.data.get("inspection_id"))
                per_id[iid] += 1
                hashes[iid] = rec.record_hash
        by_key: dict[str, str | None] = {}
        for idem in keys:
            found = store.find_by_idempotency_key(f"{STATION}/{idem}")
            by_key[idem] = None if found is None else found.id
    return per_id, hashes, by_key


def _kill_run(home: Path, db_url: str, model: Path) -> None:
    init_key(home / "keys", station_id=STATION)
    with Store.open(db_url, home / "images") as store:
        key, _ = add_key(store, "kill-station", "station", STATION)
    server = Server(home, db_url, model)
    book = Book()
    rng = np.random.default_rng(20)
    try:
        for _ in range(KILLS):
            server.start()
            _retry_unanswered(server.base, key, book)
            _upload_and_kill(server, key, book, rng)
        server.start()
        _retry_unanswered(server.base, key, book)
    finally:
        server.stop()

    assert not book.unexpected, book.unexpected
    assert not book.unanswered
    assert book.cut_mid >= 1, "no kill landed on a request in flight"
    assert set(book.answered) == set(book.photo)

    per_id, hashes, by_key = _ledger(db_url, home / "images", list(book.photo))
    answered_ids = {iid: h for _, iid, h in book.answered.values()}
    # no accepted record lost: each answered inspection has its record, with the answered hash
    assert {iid for iid, h in answered_ids.items() if hashes.get(iid) != h} == set()
    # no duplicate: the ledger holds exactly the answered inspections, each once, one per key
    assert [iid for iid, n in per_id.items() if n != 1] == []
    assert set(per_id) == set(answered_ids)
    assert len(answered_ids) == len(book.photo)
    assert {idem: by_key[idem] for idem in book.answered} == {
        idem: iid for idem, (_, iid, _) in book.answered.items()
    }
    done = subprocess.run(
        _cli("evidence", "verify", "--db", db_url, "--home", str(home)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(  # the run's shape, for the log (-s)
        f"kill -9 x{KILLS}: {len(book.photo)} requests, unanswered at each kill {book.cut_off} "
        f"({book.cut_mid} cut mid-request), "
        f"retries answered {dict(book.retried)}"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'weldinspect.db'}"
        return
    with throwaway_database() as (url, _name, _admin):
        yield url


def test_kill_9_during_uploads_loses_and_duplicates_nothing(
    tmp_path: Path, tiny_model_dir: Path, db_url: str
) -> None:
    _kill_run(tmp_path, db_url, tiny_model_dir)
