"""Soak test of the station service: N clients for M minutes, then count what was kept.

    .venv/bin/python scripts/soak.py --clients 16 --minutes 10 [--db sqlite-path | postgresql-URL]
                                     [--json-out soak.json] [--model DIR | --tiny]

Starts ``weldinspect serve`` in a subprocess on a free port (a fresh data directory with its own
signing key and a station API key, unique per run), then ``--clients`` threads upload synthetic seam
photos (``inspection.data.synth``) back to back until ``--minutes`` have passed, each upload with its
own Idempotency-Key; every ``--replay-every``-th upload re-sends an earlier key and must get 200
with the same inspection. While it runs, the server's resident memory (``/proc/<pid>/status``
VmRSS) is sampled. At the end the server is stopped with SIGTERM (it drains requests in flight) and:

* **errors**: every answer other than 201 (or 200 for a replay), and every transport error, by code;
* **latency**: p50 / p99 / max of the uploads, in ms;
* **RSS growth**: server RSS after warm-up, at the end and at its peak, in MiB;
* **lost** (warm-up uploads included): inspections the clients got 201 for that have no evidence
  record in the ledger, or whose record hash differs from the one in the 201 body;
* **duplicated**: ledger records of this run's station beyond one per 201 (e.g. a replay that
  created a second record), and replays answered with another inspection;
* **ledger verifies**: ``weldinspect evidence verify`` (a subprocess) exits 0;
* **load**: the machine's load average when the clients start and when they stop (other work).

``--db``: a SQLite file path (default: ``weldinspect.db`` in a temporary data directory) or a
PostgreSQL URL (``postgresql+psycopg://postgres@127.0.0.1:5432/DB``; use a database of its own:
the whole chain in it is verified). Exit code 0 when there were no errors, nothing was lost or
duplicated and the ledger verifies; 1 otherwise; 2 bad usage or the server did not start.
The figures are printed as JSON and written to ``--json-out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_service import free_port, make_images, wait_ready  # noqa: E402

from inspection.evidence.keys import init_key  # noqa: E402
from inspection.evidence.ledger import KIND_INSPECTION, iter_records  # noqa: E402
from inspection.service.auth import add_key  # noqa: E402
from inspection.store import Store  # noqa: E402

log = logging.getLogger("soak")

META = {
    "machine_serial": "SOAK-1",
    "seam_id": "S-1",
    "process": "laser",
    "material": "stainless",
    "thickness_mm": 2.0,
    "mm_per_px": 0.05,
    "quality_level": "C",
    "params": {"power_w": 2000.0, "speed_mm_s": 40.0},
}


@dataclass
class Tally:
    """What the clients saw (shared by the client threads under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    created: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # idem key -> (id, seq, hash)
    replays: int = 0
    replay_mismatches: int = 0
    requests: int = 0


def rss_mib(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (Linux ``/proc``), or None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def db_url_for(db: str | None, home: Path) -> str:
    if db is None:
        return f"sqlite:///{home / 'weldinspect.db'}"
    if db.startswith(("postgresql", "postgres://")):
        return db
    if "://" in db:
        msg = f"--db {db!r}: expected a SQLite file path or a postgresql URL"
        raise ValueError(msg)
    return f"sqlite:///{Path(db).resolve()}"


def upload(
    client: httpx.Client, key: str, image: bytes, idem: str, part: str
) -> tuple[int, dict[str, Any] | None, float]:
    t0 = time.perf_counter()
    try:
        r = client.post(
            "/v1/inspections",
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
            files={"image": (f"{part}.jpg", image, "image/jpeg")},
            data={"metadata": json.dumps({**META, "part_id": part})},
        )
    except httpx.HTTPError as exc:
        log.warning("transport error: %s", exc)
        return 0, None, (time.perf_counter() - t0) * 1000.0
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
    return r.status_code, body, (time.perf_counter() - t0) * 1000.0


def client_loop(
    worker: int, base: str, key: str, images: list[bytes], deadline: float, replay_every: int, tally: Tally
) -> None:
    rng = np.random.default_rng(abs(worker) + 1000)
    mine: list[tuple[str, bytes]] = []
    n = 0
    with httpx.Client(base_url=base, timeout=300.0) as client:
        while time.monotonic() < deadline:
            n += 1
            if replay_every and n % replay_every == 0 and mine:
                idem, image = mine[int(rng.integers(0, len(mine)))]
                status, body, ms = upload(client, key, image, idem, f"replay-{worker}")
                with tally.lock:
                    tally.requests += 1
                    tally.replays += 1
                    tally.latencies_ms.append(ms)
                    if status != 200:
                        tally.errors[f"replay:{status}"] += 1
                    elif body is None or body.get("id") != tally.created[idem][0]:
                        tally.replay_mismatches += 1
                continue
            idem = uuid.uuid4().hex
            image = images[int(rng.integers(0, len(images)))]
            status, body, ms = upload(client, key, image, idem, f"P-{worker}-{n}")
            with tally.lock:
                tally.requests += 1
                tally.latencies_ms.append(ms)
                if status == 201 and body is not None and body.get("evidence"):
                    ev = body["evidence"]
                    tally.created[idem] = (str(body["id"]), int(ev["seq"]), str(ev["record_hash"]))
                    mine.append((idem, image))
                else:
                    detail = "" if body is None else str(body.get("detail", ""))[:80]
                    tally.errors[f"{status} {detail}".strip()] += 1


def ledger_check(db_url: str, images_dir: Path, station: str, tally: Tally) -> dict[str, int]:
    """Compare the 201s with the ledger: lost and duplicated inspections of this run's station."""
    found: Counter[str] = Counter()
    hashes: dict[str, str] = {}
    with Store.open(db_url, images_dir, migrate_db=False) as store, store.session() as s:
        for rec in iter_records(s):
            if rec.kind != KIND_INSPECTION:
                continue
            data = rec.data
            if (data.get("context") or {}).get("station_id") != station:
                continue
            iid = str(data.get("inspection_id"))
            found[iid] += 1
            hashes[iid] = rec.record_hash
    answered = {iid: h for iid, _, h in tally.created.values()}
    lost = sum(1 for iid, h in answered.items() if hashes.get(iid) != h)
    duplicated = sum(c - 1 for c in found.values()) + sum(1 for iid in found if iid not in answered)
    return {
        "ledger_records": sum(found.values()),
        "lost": lost,
        "duplicated": duplicated + tally.replay_mismatches,
    }


def evidence_verify(db_url: str, home: Path) -> tuple[bool, str]:
    cmd = [sys.executable, "-c", "from inspection.cli import main; main()", "evidence", "verify",
           "--db", db_url, "--home", str(home)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        log.error("evidence verify exited %d:\n%s", done.returncode, output[-4000:])
    lines = output.splitlines()
    return done.returncode == 0, next(
        (x for x in lines if x.startswith(("OK", "INVALID"))), lines[-1] if lines else ""
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16, help="concurrent upload clients")
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the clients upload")
    ap.add_argument("--db", default=None, help="SQLite file path or postgresql URL (default: temp SQLite)")
    ap.add_argument("--json-out", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--model", type=Path, default=None, help="model artifact (default: the shipped model)")
    ap.add_argument("--tiny", action="store_true", help="use the tiny random test model instead")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "onnx-int8"))
    ap.add_argument("--slots", type=int, default=2, help="server --slots")
    ap.add_argument("--images", type=int, default=8, help="distinct synthetic photos to cycle through")
    ap.add_argument(
        "--replay-every", type=int, default=20, help="every k-th upload re-sends a key (0: never)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the data directory (store, server log)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("httpx", "alembic", "inspection"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.clients < 1 or args.minutes <= 0:
        log.error("--clients must be >= 1 and --minutes > 0")
        return 2

    workdir: contextlib.AbstractContextManager[str] = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="soak-"))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="soak-")
    )
    with workdir as tmp:
        home = Path(tmp)
        if args.keep:
            log.info("data directory (kept): %s", home)
        try:
            db_url = db_url_for(args.db, home)
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        run_id = uuid.uuid4().hex[:8].upper()
        station = f"SOAK-{run_id}"
        model = args.model
        if args.tiny:
            from tests.helpers.artifacts import make_tiny_artifact

            model = make_tiny_artifact(home / "tiny-model")
        init_key(home / "keys", station_id=station)
        with Store.open(db_url, home / "images") as store:
            key, _ = add_key(store, f"soak-{run_id.lower()}", "station", station)
        images = make_images(args.images, seed=7)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-c", "from inspection.cli import main; main()", "serve", "--home", str(home),
               "--db", db_url, "--port", str(port), "--slots", str(args.slots),
               "--backend", args.backend]  # fmt: skip
        if model is not None:
            cmd += ["--model", str(model)]
        with (home / "server.log").open("wb") as server_log:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=server_log, stderr=subprocess.STDOUT)
        tally = Tally()
        rss: list[float] = []
        try:
            try:
                wait_ready(base, proc, timeout_s=300.0)
            except RuntimeError as exc:
                log.error("%s\n%s", exc, (home / "server.log").read_text()[-3000:])
                return 2
            warm = Tally()  # warm-up: load paths and caches before the RSS baseline (not reported)
            client_loop(-1, base, key, images, time.monotonic() + 5.0, 0, warm)
            tally.created.update(warm.created)
            rss_start = rss_mib(proc.pid)
            load_start = os.getloadavg()
            log.info(
                "soak: %d clients for %.1f min against %s (%s)", args.clients, args.minutes, base, db_url
            )
            deadline = time.monotonic() + args.minutes * 60.0
            threads = [
                threading.Thread(
                    target=client_loop,
                    args=(i, base, key, images, deadline, args.replay_every, tally),
                    daemon=True,
                )
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):  # an RSS sample every 5 s
                value = rss_mib(proc.pid)
                if value is not None:
                    rss.append(value)
                next(t for t in threads if t.is_alive()).join(timeout=5.0)
            rss_end = rss_mib(proc.pid)
            load_end = os.getloadavg()
        finally:
            proc.terminate()  # SIGTERM: uvicorn drains requests in flight
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        counts = ledger_check(db_url, home / "images", station, tally)
        verified, verify_line = evidence_verify(db_url, home)
        lat = np.array(tally.latencies_ms) if tally.latencies_ms else np.zeros(1)
        figures = {
            "clients": args.clients,
            "minutes": args.minutes,
            "db": "postgresql" if db_url.startswith("postgres") else "sqlite",
            "model": "tiny" if args.tiny else str(model or "shipped default"),
            "cpus": os.cpu_count(),
            "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
            "loadavg_1_5_15_end": [round(x, 2) for x in load_end],
            "requests": tally.requests,
            "created": len(tally.created) - len(warm.created),
            "warmup_created": len(warm.created),
            "replays": tally.replays,
            "errors": sum(tally.errors.values()),
            "errors_by_kind": dict(tally.errors),
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "max_ms": round(float(lat.max()), 1),
            "throughput_rps": round(tally.requests / (args.minutes * 60.0), 2),
            "rss_start_mib": None if rss_start is None else round(rss_start, 1),
            "rss_end_mib": None if rss_end is None else round(rss_end, 1),
            "rss_peak_mib": round(max(rss), 1) if rss else None,
            "rss_growth_mib": None if rss_start is None or rss_end is None else round(rss_end - rss_start, 1),
            **counts,
            "ledger_verifies": verified,
            "verify": verify_line,
            "server_exit_code": proc.returncode,
        }
    print(json.dumps(figures, indent=2))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    ok = figures["errors"] == 0 and counts["lost"] == 0 and counts["duplicated"] == 0 and verified
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
