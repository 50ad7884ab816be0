"""Train the weld grader from a YAML config (thin wrapper: parse args, call the training package).

.venv/bin/python scripts/train.py --config scripts/configs/lowo.yaml [--resume]
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="training config YAML")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoints")
    parser.add_argument(
        "--card-only",
        action="store_true",
        help="final configs: rewrite the artifact's MODEL_CARD.md from the runs as they are (no training)",
    )
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="LOWO configs: refit calibration.json from the finished run's oof.npz with the config's "
        "calibration section (no training; the previous file is kept as calibration.previous.json)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=YAML", help="override a top-level key"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import yaml

    from inspection.config import ConfigError
    from inspection.train.cache import DataMissingError
    from inspection.train.config import load_train_config
    from inspection.train.pretrain import InitFromError
    from inspection.train.run import run_training

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    try:
        cfg = load_train_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = shlex.join(
        [".venv/bin/python", "scripts/train.py", *(argv if argv is not None else sys.argv[1:])]
    )
    if args.recalibrate:
        from inspection.train.run import recalibrate_run

        try:
            calib = recalibrate_run(cfg)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            json.dumps(
                {"peak_thresholds": calib["peak_thresholds"], "peak_rule": calib["peak_rule"]}, indent=2
            )
        )
        return 0
    if args.card_only:
        from inspection.train.final import rebuild_card

        try:
            print(rebuild_card(cfg))
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        summary = run_training(cfg, resume=args.resume, command=command)
    except (DataMissingError, InitFromError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: summary[k] for k in ("average", "artifact") if k in summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
