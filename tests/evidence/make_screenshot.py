"""Regenerate ``docs/claim_report.png``: page 1 of the claim report PDF for a synthetic history.

Run from the repository root: ``.venv/bin/python -m tests.evidence.make_screenshot``. Uses the
expert database (``inspection.recommend``) when present, else the tests' fake window.
"""

from __future__ import annotations

import io
import logging
import sys
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image as PILImage

from inspection.evidence.bundle import export_bundle
from inspection.evidence.report import expert_db_compliance, pdf_page_png
from tests.evidence.factories import StepClock, build_history, make_ledger, open_store, window_compliance

OUT = Path("docs/claim_report.png")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    compliance, source = expert_db_compliance()
    if compliance is None:
        compliance, source = window_compliance, "test window (inspection.recommend unavailable)"
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp))
        ledger = make_ledger(store, clock=StepClock(step=timedelta(hours=31)))
        build_history(store, ledger)
        bundle = Path(tmp) / "claim.zip"
        export_bundle(
            store, bundle, serial="LW-4471", signer=ledger.signer, compliance=compliance,
            compliance_source=source, clock=lambda: datetime(2025, 4, 2, 9, 30, tzinfo=UTC),
        )  # fmt: skip
        with zipfile.ZipFile(bundle) as zf:
            pdf = zf.read("report/claim_report.pdf")
        store.close()
    png = pdf_page_png(pdf, 0, scale=1.6)
    img = PILImage.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    img.save(OUT, format="PNG", optimize=True)
    logging.info("wrote %s (%d bytes, %s x %s); compliance: %s", OUT, OUT.stat().st_size, *img.size, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
