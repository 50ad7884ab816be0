"""ISO standards verdicts for surface imperfections (pure; tables are packaged data).

* :func:`assess` - findings + :class:`~inspection.types.InspectionContext` ->
  :class:`~inspection.types.StandardsReport` (ISO 13919-1 / 13919-2 for laser and electron beam,
  ISO 5817 for arc welding).
* :func:`load_tables` - the validated limit tables (default: packaged ``iso_limits.yaml``).

See docs/standards.md for the tables, formulas and every unconfirmed value.
"""

from __future__ import annotations

from inspection.standards.tables import (
    BELOW_D,
    LEVELS,
    NOT_ASSESSABLE,
    LimitTables,
    TablesError,
    load_tables,
    parse_tables,
)
from inspection.standards.verdicts import assess, level_passes, worst_level

__all__ = [
    "BELOW_D",
    "LEVELS",
    "NOT_ASSESSABLE",
    "LimitTables",
    "TablesError",
    "assess",
    "level_passes",
    "load_tables",
    "parse_tables",
    "worst_level",
]
