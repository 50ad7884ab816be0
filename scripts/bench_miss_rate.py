"""Check the miss-rate estimate in simulation: how often does its 95 % interval cover a known rate?

    .venv/bin/python scripts/bench_miss_rate.py [--rates 0.005 0.02 0.05 0.10] [--audited 25 100 400]
        [--audit-rate 0.02] [--trials 1000] [--seed 0] [--json out.json]

For each injected miss rate p and each expected number of reviewed audit samples n, it simulates
``trials`` runs of ``n / audit_rate`` results accepted without review, each wrong with probability
p, draws audit samples with the service's keyed draw (a fresh key per run,
:class:`inspection.evidence.audit.AuditSampler`), lets a perfect reviewer see which audited results
were wrong, and counts how often the Clopper-Pearson and Wilson 95 % intervals hold p
(:func:`inspection.evidence.audit.simulate_coverage`). It also prints the exact coverage at n
(the sum of the binomial probabilities of the k whose interval holds p) and the mean upper bound,
the "at most x %" figure. The table in docs/dashboard.md was made with the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspection.evidence.audit import METHODS, simulate_coverage  # noqa: E402

log = logging.getLogger("bench_miss_rate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[0.005, 0.02, 0.05, 0.10])
    parser.add_argument("--audited", type=int, nargs="+", default=[25, 100, 400])
    parser.add_argument("--audit-rate", type=float, default=0.02)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows = []
    t0 = time.perf_counter()
    head = f"{'cover':>6} {'exact':>6} {'mean hi':>7}"
    print(f"{'p':>6} {'n':>5} | CP {head} | Wilson {head}")
    for i, p in enumerate(args.rates):
        for j, n in enumerate(args.audited):
            inspections = round(n / args.audit_rate)
            runs = simulate_coverage(
                p, inspections=inspections, audit_rate=args.audit_rate, trials=args.trials,
                methods=METHODS, seed=args.seed + 1000 * i + j,
            )  # fmt: skip
            cp, wi = runs["clopper-pearson"], runs["wilson"]
            print(
                f"{p:6.3f} {cp.mean_audited:5.0f} | CP {cp.covered:6.3f} {cp.exact:6.3f} "
                f"{cp.mean_high:7.4f} | Wilson {wi.covered:6.3f} {wi.exact:6.3f} {wi.mean_high:7.4f}",
                flush=True,
            )
            rows.extend(asdict(c) for c in runs.values())
    elapsed = time.perf_counter() - t0
    print(f"{args.trials} trials per row, audit rate {args.audit_rate}, {elapsed:.0f} s")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"rows": rows, "seconds": elapsed}, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
