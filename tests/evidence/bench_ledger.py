"""Rough ledger timings (not a test): ``.venv/bin/python -m tests.evidence.bench_ledger``.

Prints records/s for ``record_inspection`` (SQLite file, tiny PNGs), ``verify_store`` and
``verify_bundle`` throughput, and the export time of a 48-inspection claim bundle with its report.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from inspection.evidence.bundle import export_bundle, verify_bundle
from inspection.evidence.ledger import InspectionToRecord, record_inspection, record_inspections
from inspection.evidence.verify import verify_store
from tests.evidence.factories import (
    CONFIG_SHA,
    build_history,
    make_ledger,
    make_result,
    open_store,
    png_bytes,
    window_compliance,
)


def main(n: int = 500) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp))
        ledger = make_ledger(store)
        items = [(png_bytes(i), i) for i in range(n)]
        results = [make_result(img, porosity=i % 4) for img, i in items]
        t0 = time.perf_counter()
        for (img, _), result in zip(items, results, strict=True):
            record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)
        t_append = time.perf_counter() - t0
        batch_store = open_store(Path(tmp) / "batch")
        batch_ledger = make_ledger(batch_store)
        t0 = time.perf_counter()
        for start in range(0, n, 32):
            chunk = [
                InspectionToRecord(r, img, CONFIG_SHA)
                for (img, _), r in zip(items[start : start + 32], results[start : start + 32], strict=True)
            ]
            record_inspections(batch_store, batch_ledger, chunk)
        t_batch = time.perf_counter() - t0
        batch_store.close()
        t0 = time.perf_counter()
        report = verify_store(store)
        t_verify = time.perf_counter() - t0
        print(
            f"record_inspection: {n / t_append:.0f} inspections/s "
            f"({1000 * t_append / n:.1f} ms each, SQLite, fsync)"
        )
        print(f"record_inspections, batches of 32: {n / t_batch:.0f} inspections/s")
        print(
            f"verify_store: {report.records / t_verify:.0f} records/s "
            f"({report.records} records + images), ok={report.ok}"
        )
        history = make_ledger(store)
        build_history(store, history)
        t0 = time.perf_counter()
        export_bundle(store, Path(tmp) / "claim.zip", serial="LW-4471", signer=history.signer,
                      compliance=window_compliance)  # fmt: skip
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        ok = verify_bundle(Path(tmp) / "claim.zip").ok
        t_vb = time.perf_counter() - t0
        size = (Path(tmp) / "claim.zip").stat().st_size
        print(f"export_bundle (48 inspections, HTML+PDF report): {t_export:.2f} s, {size / 1024:.0f} KiB")
        print(f"verify_bundle: {t_vb:.2f} s, ok={ok}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
