"""Station simulator: the same photos over HTTP, the hot folder, MQTT and OPC UA, checked end to end.

    .venv/bin/python scripts/station_sim.py [--protocols http,folder,mqtt,opcua] [--photos 100]
        [--model DIR] [--backend auto] [--synthetic | --data DIR] [--json-out FILE]
        [--broker-port PORT] [--broker-restart term|kill|none] [--concurrency 1] [--workdir DIR]

One run, in a fresh data directory (one SQLite ledger, or ``--db`` a PostgreSQL URL of its own):

1. **Photos**: ``--photos`` real photos from ``../shared/data/weld-porosity`` (evenly spaced over
   ``annotations.jsonl``, so every weld is in), or synthetic 800 x 800 seams
   (``inspection.data.synth.generate_weld``) with ``--synthetic`` or when the data is absent.
2. **Reference**: ``weldinspect score`` on the same files with the same model and backend.
3. **Each protocol in turn**, one station id each (``SIM-HTTP``, ``SIM-FOLDER``, ``SIM-MQTT``,
   ``SIM-OPCUA``, each with its own evidence key): its ``weldinspect`` command starts on loopback,
   one warm-up photo (part ``warmup``, kept out of the figures), then every photo, ``--concurrency``
   stations at a time, each waiting for its result (``scripts/station_drivers.py`` says how each
   protocol sends and what latency means there). MQTT runs against a Mosquitto of our own on
   ``--broker-port`` (default: a free port; never 1883), which is **restarted** (SIGTERM, with
   persistence; ``kill`` = SIGKILL, without) just after the middle photo was accepted, while it is
   being inspected. A station that gets no answer within 20 s publishes again with the same
   idempotency key.
4. **Checks**:
   * *equal to score*: for every photo and protocol, the result the station received (the hot
     folder: the stored result its ``.result.json`` names) against the ``score`` record of the same
     file: the same image SHA-256, porosity and spatter grades (null = not graded), ``needs_review``,
     ``review_reasons`` (the same list, in order) and ``findings`` (the same number, in order, each
     with the same ``kind`` and every numeric field within ``--tolerance``, relative to
     max(1, |score value|); default 1e-6). Any difference is listed as a mismatch;
   * *lost*: a sent photo without an inspection record of its station and part id in the evidence
     ledger, or whose record holds other image bytes or another inspection id than the station was
     told; *duplicated*: ledger records of a station beyond one per photo (warm-up included), and
     records of a part id that was never sent;
   * *ledger verifies*: ``weldinspect evidence verify`` exits 0.
5. **Figures** per protocol: messages per second (photos / wall time of the stream), p50 / p99 /
   max latency in ms (numpy percentiles, linear), resends and extra replies (MQTT replays after the
   restart). Printed as JSON and written to ``--json-out``.

Exit code 0 when every photo got a result equal to score, nothing was lost or duplicated and the
ledger verifies; 1 otherwise; 2 bad usage or a command did not start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from station_drivers import (  # noqa: E402
    Client,
    Env,
    FolderStation,
    HttpStation,
    Mosquitto,
    MqttClient,
    MqttStation,
    OpcuaStation,
    Outcome,
    Photo,
    Station,
    free_port,
)

log = logging.getLogger("station_sim")

PROTOCOLS = ("http", "folder", "mqtt", "opcua")
CLEAN_EXIT = {"http": (0, -signal.SIGTERM), "folder": (0,), "mqtt": (0,), "opcua": (0,)}
"""Exit codes of a clean stop (uvicorn re-raises SIGTERM after draining, hence -15 for serve)."""
DATA = REPO.parent / "shared" / "data" / "weld-porosity"


# ---- photos ---------------------------------------------------------------------------------------


def real_photos(data: Path, n: int) -> list[Path]:
    """``n`` photos evenly spaced over ``data/annotations.jsonl`` (its order), so every weld is in."""
    lines = [json.loads(x) for x in (data / "annotations.jsonl").read_text().splitlines() if x.strip()]
    if n > len(lines):
        msg = f"--photos {n}: {data} has only {len(lines)} photos"
        raise ValueError(msg)
    picks = sorted({int(i) for i in np.linspace(0, len(lines) - 1, n).round()})
    return [data / lines[i]["image"] for i in picks]


def synthetic_photos(folder: Path, n: int) -> list[Path]:
    from bench_service import make_images

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(make_images(n, seed=19)):
        path = folder / f"synth-{i:03d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def load_photos(args: argparse.Namespace, folder: Path) -> tuple[list[Photo], str]:
    """The photos (copied into ``folder``) and where they came from."""
    folder.mkdir(parents=True)
    data = args.data or DATA
    if not args.synthetic and (data / "annotations.jsonl").is_file():
        sources, origin = real_photos(data, args.photos), f"real: {data}"
    else:
        if not args.synthetic:
            log.warning("no real photos at %s: using synthetic ones", data)
        sources, origin = (
            synthetic_photos(folder / "_synth", args.photos),
            "synthetic (generate_weld, seed 19)",
        )
    photos = []
    for src in sources:
        content = src.read_bytes()
        (folder / src.name).write_bytes(content)
        photos.append(Photo(src.name, content, hashlib.sha256(content).hexdigest()))
    if len({p.name for p in photos}) != len(photos):
        msg = "photo file names must be unique"
        raise ValueError(msg)
    return photos, origin


# ---- reference: weldinspect score -----------------------------------------------------------------


def score_reference(photos_dir: Path, env: Env) -> tuple[dict[str, dict[str, Any]], float]:
    """``weldinspect score`` records by file name, and its wall time in seconds."""
    out = env.home / "score.jsonl"
    args = [sys.executable, "-c", "from inspection.cli import main; main()", "score", str(photos_dir)]
    args += ["--glob", "*.jpg", "--out", str(out), "--backend", env.backend, "--quiet"]
    if env.model is not None:
        args += ["--model", str(env.model)]
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        msg = f"weldinspect score exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}"
        raise RuntimeError(msg)
    records = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    return {Path(r["image"]).name: r for r in records}, wall


# ---- equality with score --------------------------------------------------------------------------

NUMERIC = (int, float)


def differences(
    got: Mapping[str, Any], want: Mapping[str, Any], tol: float
) -> tuple[list[str], float, float]:
    """What differs between a protocol's ``InspectionResult`` dict and the ``score`` record (see the
    module doc); and the largest absolute deviation of a grade probability (not compared: the
    grades are) and of a finding's number."""
    diffs: list[str] = []
    prob_dev = dev = 0.0
    if got.get("image_sha256") != want.get("sha256"):
        diffs.append(f"image_sha256 {got.get('image_sha256')} != score {want.get('sha256')}")
    for head in ("porosity", "spatter"):
        g, w = got.get(head) or {}, want.get(head) or {}
        if g.get("grade") != w.get("grade"):
            diffs.append(f"{head}.grade {g.get('grade')} != score {w.get('grade')}")
        for a, b in zip(g.get("probs") or (), w.get("probs") or (), strict=False):
            prob_dev = max(prob_dev, abs(float(a) - float(b)))
    if bool(got.get("needs_review")) != bool(want.get("needs_review")):
        diffs.append(f"needs_review {got.get('needs_review')} != score {want.get('needs_review')}")
    if list(got.get("review_reasons") or ()) != list(want.get("review_reasons") or ()):
        diffs.append(f"review_reasons {got.get('review_reasons')} != score {want.get('review_reasons')}")
    gf, wf = list(got.get("findings") or ()), list(want.get("findings") or ())
    if len(gf) != len(wf):
        diffs.append(f"{len(gf)} findings != score {len(wf)}")
        return diffs, prob_dev, dev
    for i, (a, b) in enumerate(zip(gf, wf, strict=True)):
        if a.get("kind") != b.get("kind"):
            diffs.append(f"findings[{i}].kind {a.get('kind')} != score {b.get('kind')}")
        for key in sorted((set(a) | set(b)) - {"kind"}):
            va, vb = a.get(key), b.get(key)
            if isinstance(va, NUMERIC) and isinstance(vb, NUMERIC):
                d = abs(float(va) - float(vb))
                dev = max(dev, d)
                if d > tol * max(1.0, abs(float(vb))):
                    diffs.append(f"findings[{i}].{key} {va} != score {vb}")
            elif va != vb:
                diffs.append(f"findings[{i}].{key} {va!r} != score {vb!r}")
    return diffs, prob_dev, dev


# ---- ledger ---------------------------------------------------------------------------------------


def ledger_check(
    env: Env, stations: Mapping[str, str], sent: Mapping[str, list[Outcome]], shas: Mapping[str, str]
) -> dict[str, Any]:
    """Lost and duplicated records per protocol, from the evidence ledger itself (``shas``: the
    SHA-256 of each photo by file name)."""
    from inspection.evidence.ledger import KIND_INSPECTION, iter_records
    from inspection.store import Store

    by_station: dict[str, Counter[str]] = defaultdict(Counter)
    records: dict[tuple[str, str], tuple[str, str]] = {}  # (station, part) -> (inspection id, sha256)
    with Store.open(env.db_url, env.home / "images", migrate_db=False) as store, store.session() as s:
        for record in iter_records(s):
            if record.kind != KIND_INSPECTION:
                continue
            data = record.data
            ctx = data.get("context") or {}
            station, part = str(ctx.get("station_id")), str(ctx.get("part_id"))
            by_station[station][part] += 1
            records[(station, part)] = (str(data.get("inspection_id")), str(data["image"]["sha256"]))
    out: dict[str, Any] = {}
    for proto, station in stations.items():
        expected = {Path(o.photo).stem: o for o in sent[proto]}
        counts = by_station.get(station, Counter())
        lost = []
        for part, o in expected.items():
            rec = records.get((station, part))
            if rec is None or rec[1] != shas[o.photo] or (o.inspection_id not in (None, rec[0])):
                lost.append(part)
        duplicated = sum(c - 1 for c in counts.values()) + sum(
            c for part, c in counts.items() if part not in expected and part != "warmup"
        )
        out[proto] = {
            "ledger_records": sum(counts.values()) - counts.get("warmup", 0),
            "lost": len(lost),
            "lost_parts": lost[:10],
            "duplicated": duplicated,
        }
    return out


def evidence_verify(env: Env) -> tuple[bool, str]:
    cmd = [sys.executable, "-c", "from inspection.cli import main; main()", "evidence", "verify",
           "--db", env.db_url, "--home", str(env.home)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, next(
        (x for x in lines if x.startswith(("OK", "INVALID"))), lines[-1] if lines else ""
    )


# ---- one protocol ---------------------------------------------------------------------------------


def stream(
    station: Station, photos: list[Photo], warmup: Photo, concurrency: int
) -> tuple[list[Outcome], float, Outcome, int | None]:
    """Start the station's command, warm up, send every photo from ``concurrency`` threads, stop."""
    clients: list[Client] = []
    outcomes = [Outcome(p.name, float("nan"), error="not sent") for p in photos]

    def worker(w: int) -> None:
        for i in range(w, len(photos), concurrency):
            try:
                outcomes[i] = clients[w].send(photos[i])
            except Exception as exc:  # a sender bug must show up as an error, not as a missing photo
                log.exception("%s: sending %s failed", station.name, photos[i].name)
                outcomes[i] = Outcome(photos[i].name, float("nan"), error=f"{type(exc).__name__}: {exc}")

    try:
        station.start()
        clients = [station.connect() for _ in range(concurrency)]
        warm = clients[0].send(warmup)
        if warm.error is not None:
            log.warning("%s warm-up failed: %s", station.name, warm.error)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        for c in clients:
            if isinstance(c, MqttClient):
                c.settle(outcomes)
    finally:
        for c in clients:
            c.close()
        code = station.stop()
    station.finish([*outcomes, warm])
    log.info("%s: %d photos in %.1f s; command exit code %s", station.name, len(outcomes), wall, code)
    return outcomes, wall, warm, code


def restart_figures(station: MqttStation, outcomes: list[Outcome]) -> dict[str, Any]:
    """The photo the broker restart hit: was it answered only after the restart began?"""
    o = next(o for o in outcomes if o.photo == station.restart_photo)
    after = (
        None if o.answered_at is None or station.restart_at is None else o.answered_at > station.restart_at
    )
    return {
        "photo": o.photo,
        "restarted": station.restart_at is not None,
        "answered_after_restart": after,
        "latency_ms": round(o.latency_ms, 1),
        "replies": o.replies,
        "created": o.created,
    }


def figures(outcomes: list[Outcome], wall: float) -> dict[str, Any]:
    lat = np.array([o.latency_ms for o in outcomes if o.error is None] or [float("nan")])
    ok = sum(1 for o in outcomes if o.error is None)
    return {
        "photos": len(outcomes),
        "answered": ok,
        "errors": [f"{o.photo}: {o.error}" for o in outcomes if o.error is not None][:10],
        "msgs_per_s": round(ok / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(np.max(lat)), 1),
        "resends": sum(o.resends for o in outcomes),
        "extra_replies": sum(max(0, o.replies - 1) for o in outcomes),
        "replayed": sum(1 for o in outcomes if o.created is False),
    }


# ---- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated subset of {PROTOCOLS}")
    ap.add_argument("--photos", type=int, default=100, help="photos sent over each protocol")
    ap.add_argument("--model", type=Path, default=None, help="model artifact (default: the shipped model)")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "onnx-int8"))
    ap.add_argument("--synthetic", action="store_true", help="synthetic photos even when real ones exist")
    ap.add_argument("--data", type=Path, default=None, help=f"real photos folder (default: {DATA})")
    ap.add_argument("--db", default=None, help="PostgreSQL URL of a database of its own (default: SQLite)")
    ap.add_argument("--json-out", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--broker-port", type=int, default=0, help="port of our own Mosquitto (0: a free one)")
    ap.add_argument(
        "--broker-restart", default="term", choices=("term", "kill", "none"), help="restart mid-stream"
    )
    ap.add_argument("--concurrency", type=int, default=1, help="stations sending at once per protocol")
    ap.add_argument("--folder-poll", type=float, default=0.1, help="weldinspect watch --poll (seconds)")
    ap.add_argument("--opcua-security", default="sign-encrypt", choices=("sign-encrypt", "none"))
    ap.add_argument("--tolerance", type=float, default=1e-6, help="relative tolerance of finding numbers")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="longest wait for one result")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the run's files here (default: temp)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = sorted(set(args.protocols) - set(PROTOCOLS))
    if unknown or not args.protocols:
        ap.error(f"--protocols {unknown or 'empty'}: choose from {', '.join(PROTOCOLS)}")
    if args.photos < 1 or args.concurrency < 1:
        ap.error("--photos and --concurrency must be >= 1")
    if args.broker_port == 1883:
        ap.error("--broker-port 1883 is the machine's own broker; choose another (or 0 for a free one)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "alembic", "inspection", "asyncua"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = datetime.now(UTC)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="station-sim-") as tmp:
        home = args.workdir or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        try:
            return run(args, home, started, load_start)
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            log.error("%s", exc)
            return 2


def run(args: argparse.Namespace, home: Path, started: datetime, load_start: tuple[float, ...]) -> int:
    from inspection.evidence.keys import init_key
    from inspection.service.auth import add_key
    from inspection.store import Store

    run_id = uuid.uuid4().hex[:8]
    photos, origin = load_photos(args, home / "photos")
    stations = {p: f"SIM-{p.upper()}" for p in args.protocols}
    key_ids = {s: init_key(home / "keys", station_id=s).key_id for s in stations.values()}
    db_url = args.db or f"sqlite:///{home / 'weldinspect.db'}"
    env = Env(home, db_url, args.model, args.backend, run_id, key_ids, args.timeout_s)
    api_key = ""
    with Store.open(db_url, home / "images") as store:  # creates the schema
        if "http" in stations:
            api_key, _ = add_key(store, f"station-sim-{run_id}", "station", stations["http"])
    log.info("%d photos (%s); scoring them with weldinspect score for the reference", len(photos), origin)
    reference, score_wall = score_reference(home / "photos", env)

    broker: Mosquitto | None = None
    if "mqtt" in stations:
        broker = Mosquitto(home / "mosquitto", args.broker_port or free_port())
        broker.start()
    restart_sig = {"term": signal.SIGTERM, "kill": signal.SIGKILL, "none": 0}[args.broker_restart]
    sent: dict[str, list[Outcome]] = {}
    report: dict[str, Any] = {}
    try:
        for proto in args.protocols:
            station: Station
            if proto == "http":
                station = HttpStation(env, stations[proto], api_key)
            elif proto == "folder":
                station = FolderStation(env, stations[proto], args.folder_poll)
            elif proto == "mqtt":
                if broker is None:
                    msg = "internal: MQTT selected but no broker started"
                    raise RuntimeError(msg)
                middle = photos[len(photos) // 2].name if restart_sig else None
                station = MqttStation(env, stations[proto], broker, middle, restart_sig or signal.SIGTERM)
            else:
                station = OpcuaStation(env, stations[proto], args.opcua_security)
            warmup = Photo("warmup.jpg", photos[0].data, photos[0].sha256)  # part "warmup"
            log.info("%s: starting (station %s)", proto, stations[proto])
            outcomes, wall, warm, code = stream(station, photos, warmup, args.concurrency)
            sent[proto] = outcomes
            report[proto] = {"station": stations[proto], **figures(outcomes, wall)}
            report[proto]["warmup_ms"] = round(warm.latency_ms, 1)
            report[proto]["exit_code"] = code
            if isinstance(station, MqttStation) and station.restart_photo is not None:
                report[proto]["restart"] = restart_figures(station, outcomes)
            if code not in CLEAN_EXIT[proto]:
                log.error("%s: the command exited %s; see %s", proto, code, home)
                report[proto]["errors"].append(f"command exit code {code}")
    finally:
        if broker is not None:
            broker.stop()

    all_ok = True
    for proto, outcomes in sent.items():
        equal, mismatches, max_prob_dev, max_dev = 0, [], 0.0, 0.0
        for o in outcomes:
            want = reference.get(o.photo)
            if o.result is None or want is None:
                why = f"no result: {o.error}" if o.result is None else "no score record"
                mismatches.append(f"{o.photo}: {why}")
                continue
            diffs, prob_dev, dev = differences(o.result, want, args.tolerance)
            max_prob_dev, max_dev = max(max_prob_dev, prob_dev), max(max_dev, dev)
            if diffs:
                mismatches.append(f"{o.photo}: {'; '.join(diffs)}")
            else:
                equal += 1
        report[proto].update(
            equal_to_score=equal,
            mismatches=len(mismatches),
            mismatch_examples=mismatches[:10],
            max_finding_dev=max_dev,
            max_prob_dev=max_prob_dev,
        )
        all_ok &= equal == len(photos) and not report[proto]["errors"]
    ledger = ledger_check(env, stations, sent, {p.name: p.sha256 for p in photos})
    for proto, counts in ledger.items():
        report[proto].update(counts)
        all_ok &= counts["lost"] == 0 and counts["duplicated"] == 0
    verified, verify_line = evidence_verify(env)
    all_ok &= verified
    if broker is not None and restart_sig and broker.restarts != 1:
        log.error("the broker was restarted %d times, not once", broker.restarts)
        all_ok = False
    result = {
        "date_utc": started.isoformat(timespec="seconds"),
        "command": "scripts/station_sim.py " + shlex.join(args.argv),
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "photos": len(photos),
        "photo_source": origin,
        "model": str(args.model or "shipped default"),
        "model_used": next(iter(reference.values()), {}).get("model"),
        "backend": args.backend,
        "concurrency": args.concurrency,
        "folder_poll_s": args.folder_poll,
        "opcua_security": args.opcua_security,
        "tolerance": args.tolerance,
        "db": "postgresql" if env.db_url.startswith("postgres") else "sqlite",
        "score_wall_s": round(score_wall, 2),
        "broker": None
        if broker is None
        else {
            "port": broker.port,
            "restart": args.broker_restart,
            "restarts": broker.restarts,
            "downtime_s": [round(x, 2) for x in broker.downtime_s],
        },
        "protocols": report,
        "ledger_verifies": verified,
        "verify": verify_line,
        "ok": all_ok,
    }
    print(json.dumps(result, indent=2))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
