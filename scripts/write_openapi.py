"""Write the service's OpenAPI document: ``.venv/bin/python scripts/write_openapi.py [PATH]``.

Default PATH is ``docs/openapi.json``; ``tests/service/test_openapi.py`` fails when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from inspection.service.openapi import DOC_PATH, write_openapi


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / DOC_PATH
    print(f"wrote {write_openapi(target)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
