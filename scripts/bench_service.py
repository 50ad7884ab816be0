"""Load benchmark of the HTTP service: latency and throughput at several concurrencies, no lost records.

    .venv/bin/python scripts/bench_service.py [--model DIR] [--requests 120] [--concurrency 1 4 16]

Starts ``weldinspect serve`` (uvicorn) in a subprocess on a free port with a fresh SQLite store in a
temporary directory, creates a station key, uploads synthetic 800 x 800 JPEGs
(``inspection.data.synth.generate_weld``) with httpx from a thread pool, each with its own
Idempotency-Key, and reports p50/p99 latency and throughput per concurrency. Afterwards it resends
some requests with their keys (must replay, 200) and checks that the store holds exactly one record
per successful upload (no lost or duplicated records) and that the evidence chain verifies.
Without ``--model`` the shipped default model is used; ``--tiny`` builds the tiny random test model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspection.data.synth import generate_weld  # noqa: E402
from inspection.evidence.keys import init_key  # noqa: E402
from inspection.evidence.verify import verify_store  # noqa: E402
from inspection.service.auth import add_key  # noqa: E402
from inspection.store import Page, Store  # noqa: E402

log = logging.getLogger("bench_service")

META = {
    "machine_serial": "BENCH-1",
    "part_id": "P-1",
    "seam_id": "S-1",
    "process": "laser",
    "material": "stainless",
    "thickness_mm": 2.0,
    "mm_per_px": 0.05,
    "quality_level": "C",
    "params": {"power_w": 2000.0, "speed_mm_s": 40.0},
}


@dataclass(frozen=True)
class Row:
    """Figures of one concurrency level (latencies in ms, throughput in requests per second)."""

    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float
    server_cpu_ms: float  # server process CPU time (user + system) per request


def random_artifact(arch: str, out: Path) -> Path:
    """A randomly initialised artifact of ``arch`` (speed does not depend on the weights)."""
    import torch

    from inspection.model.artifact import ModelConfig, save_artifact
    from inspection.model.net import build_model

    torch.manual_seed(0)
    config = ModelConfig(name="bench-random", version="0.0.0", arch=arch)
    save_artifact(out, build_model(arch), config, "# Random benchmark model\n\nUntrained.\n", {})
    return out


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_images(n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct synthetic 800 x 800 seam photos as JPEG bytes (quality 90)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        weld = generate_weld(
            rng,
            width=800,
            height=800,
            n_pores=int(rng.integers(0, 6)),
            n_spatter=int(rng.integers(0, 12)),
            jpeg_quality=0,
        )
        ok, enc = cv2.imencode(
            ".jpg", np.ascontiguousarray(weld.image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        if not ok:
            msg = "could not encode a synthetic JPEG"
            raise RuntimeError(msg)
        out.append(enc.tobytes())
    return out


def start_server(
    home: Path, port: int, model: Path | None, slots: int, threads: int | None, backend: str
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-c",
        "from inspection.cli import main; main()",
        "serve",
        "--home",
        str(home),
        "--port",
        str(port),
        "--slots",
        str(slots),
    ]
    if model is not None:
        cmd += ["--model", str(model)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    cmd += ["--backend", backend]
    log_file = (home / "server.log").open("wb")
    return subprocess.Popen(cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"server exited with code {proc.returncode} before it was ready (see server.log)"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    msg = f"server not ready after {timeout_s} s"
    raise RuntimeError(msg)


def run_level(
    client: httpx.Client,
    key: str,
    images: list[bytes],
    concurrency: int,
    n: int,
    sent: dict[str, bytes],
    server_pid: int,
) -> Row:
    """Send ``n`` uploads from ``concurrency`` threads; ``sent`` collects idempotency key -> image of 201s."""

    def one(i: int) -> tuple[float, int, str, bytes]:
        data = images[i % len(images)]
        ikey = uuid.uuid4().hex
        t0 = time.perf_counter()
        try:
            r = client.post(
                "/v1/inspections",
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": ikey},
                files={"image": (f"bench-{i}.jpg", data, "image/jpeg")},
                data={"metadata": json.dumps(META)},
            )
            status = r.status_code
        except httpx.HTTPError as exc:
            log.warning("request %d failed: %s", i, exc)
            status = 0
        return (time.perf_counter() - t0) * 1000.0, status, ikey, data

    cpu0 = process_cpu_s(server_pid)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    server_cpu_ms = (process_cpu_s(server_pid) - cpu0) * 1000.0 / n
    lat = np.array([r[0] for r in results])
    errors = sum(1 for r in results if r[1] != 201)
    for _, status, ikey, data in results:
        if status == 201:
            sent[ikey] = data
    return Row(
        concurrency,
        n,
        errors,
        round(float(np.percentile(lat, 50)), 1),
        round(float(np.percentile(lat, 99)), 1),
        round(float(statistics.fmean(lat)), 1),
        round(n / wall, 2),
        round(server_cpu_ms, 1),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model artifact (default: the shipped model)")
    ap.add_argument("--tiny", action="store_true", help="use the tiny random test model instead")
    ap.add_argument("--random-arch", default=None, help="use a randomly initialised artifact of this arch")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "onnx-int8"))
    ap.add_argument("--requests", type=int, default=120, help="uploads per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--images", type=int, default=16, help="distinct synthetic images to cycle through")
    ap.add_argument("--slots", type=int, default=2, help="server --slots (model runs at once)")
    ap.add_argument("--threads", type=int, default=1, help="server --threads (torch/onnxruntime threads)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "alembic", "inspection"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        home = Path(tmp)
        model = args.model
        if args.tiny:
            from tests.helpers.artifacts import make_tiny_artifact

            model = make_tiny_artifact(home / "tiny-model")
        elif args.random_arch:
            model = random_artifact(args.random_arch, home / "random-model")
        init_key(home / "keys", station_id="bench")
        db_url = f"sqlite:///{home / 'weldinspect.db'}"
        with Store.open(db_url, home / "images") as store:
            key, _ = add_key(store, "bench-station", "station", "BENCH")
        log.info("generating %d synthetic 800 x 800 JPEGs", args.images)
        images = make_images(args.images)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(home, port, model, args.slots, args.threads, args.backend)
        rows: list[Row] = []
        sent: dict[str, bytes] = {}
        try:
            wait_ready(base, proc)
            with httpx.Client(
                base_url=base,
                timeout=120.0,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            ) as client:
                warm: dict[str, bytes] = {}
                run_level(client, key, images, 2, 8, warm, proc.pid)  # warm-up (not reported)
                for c in args.concurrency:
                    row = run_level(client, key, images, c, args.requests, sent, proc.pid)
                    rows.append(row)
                    log.info("%s", row)
                replays = list(sent.items())[:10]
                replay_codes = [
                    client.post(
                        "/v1/inspections",
                        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": k},
                        files={"image": ("replay.jpg", d, "image/jpeg")},
                        data={"metadata": json.dumps(META)},
                    ).status_code
                    for k, d in replays
                ]
                total = client.get(
                    "/v1/inspections", headers={"Authorization": f"Bearer {key}"}, params={"limit": 1}
                ).json()["total"]
        finally:
            proc.terminate()  # SIGTERM: uvicorn drains and stops
            proc.wait(timeout=60)
        with Store.open(db_url, home / "images") as store:
            stored_keys = {r.idempotency_key for r in store.list_inspections(page=Page(limit=1000)).items}
            report = verify_store(store)
        expected = len(sent) + len(warm)
        bench_keys = {f"BENCH/{k}" for k in (*sent, *warm)}
        checks = {
            "records_expected": expected,
            "records_stored": total,
            "lost": len(bench_keys - stored_keys) if total <= 1000 else None,
            "duplicated": total - expected,
            "replays_200": sum(c == 200 for c in replay_codes),
            "replays_sent": len(replay_codes),
            "chain_verifies": report.ok,
        }
    heads = ("concurrency", "requests", "errors", "p50 ms", "p99 ms", "mean ms", "throughput req/s")
    print("| " + " | ".join((*heads, "server CPU ms/req")) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = (
            r.concurrency,
            r.requests,
            r.errors,
            r.p50_ms,
            r.p99_ms,
            r.mean_ms,
            r.throughput_rps,
            r.server_cpu_ms,
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(json.dumps(checks))
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {
                    "rows": [asdict(r) for r in rows],
                    "checks": checks,
                    "model": "tiny" if args.tiny else str(args.random_arch or model or "shipped default"),
                    "backend": args.backend,
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
            + "\n"
        )
    ok = (
        checks["duplicated"] == 0
        and not checks["lost"]
        and checks["chain_verifies"]
        and checks["replays_200"] == checks["replays_sent"]
        and all(r.errors == 0 for r in rows)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
