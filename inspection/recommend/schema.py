"""Pydantic schema of the expert database (``expert_db.yaml``) and its loader.

The database holds, per process, the parameters it uses and default machine limits; parameter
windows per (process, material, thickness range); and defect -> cause -> remedy rules. Every
number carries ``basis`` (``cited`` or ``judgement``) and a ``source`` id that resolves to a
note in the ``sources`` section. A block may set ``basis``/``source`` once for all its numbers;
the loaded model always has them per number. :func:`load_expert_db` raises
:class:`ExpertDBError` naming the file and the field path of every problem.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inspection.recommend.models import NumericRange, ParameterWindow

Basis = Literal["cited", "judgement"]
DEFAULT_DB_PATH = Path(__file__).with_name("expert_db.yaml")
SUPPORTED_SCHEMA_VERSIONS = (1,)
ANY = "*"
DEFECTS = ("porosity", "spatter")
PATTERNS = ("any", "start_end", "whole_seam")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is present


class ExpertDBError(ValueError):
    """The expert database file is missing or invalid; the message names the file and field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParameterSpec(_Frozen):
    """A machine parameter, ``numeric`` (in ``unit``, advice rounded to ``step``) or ``categorical``
    (one of ``values``)."""

    unit: str = ""
    kind: Literal["numeric", "categorical"] = "numeric"
    step: float | None = Field(None, gt=0)
    values: tuple[str, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        if self.kind == "categorical" and not self.values:
            msg = "a categorical parameter needs values"
            raise ValueError(msg)
        if self.kind == "numeric" and self.values:
            msg = "a numeric parameter cannot list values"
            raise ValueError(msg)
        return self


class RangeSpec(_Frozen):
    """``[min, max]`` of a numeric parameter with the basis and source of the numbers."""

    min: float
    max: float
    basis: Basis
    source: str
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> RangeSpec:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            msg = f"min and max must be finite, got {self.min}, {self.max}"
            raise ValueError(msg)
        if self.min > self.max:
            msg = f"min ({self.min}) must not exceed max ({self.max})"
            raise ValueError(msg)
        return self


def _inherit(block: Any, key: str) -> Any:
    """Expand ``[min, max]`` shorthands in ``block[key]`` with the block's basis and source."""
    if not isinstance(block, dict) or not isinstance(block.get(key), dict):
        return block
    basis, source = block.get("basis"), block.get("source")
    expanded: dict[str, Any] = {}
    for name, value in block[key].items():
        if isinstance(value, list | tuple) and len(value) == 2:
            value = {"min": value[0], "max": value[1]}
        if isinstance(value, dict):
            value = {"basis": basis, "source": source, **value}
        expanded[name] = value
    return {**block, key: expanded}


class ProcessSpec(_Frozen):
    """A welding process: its parameters and default machine limits (pass the real machine's)."""

    label: str
    aliases: tuple[str, ...] = ()
    parameters: tuple[str, ...]
    machine_limits: dict[str, RangeSpec]
    basis: Basis | None = None
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        return _inherit(data, "machine_limits")


class MaterialSpec(_Frozen):
    label: str
    aliases: tuple[str, ...] = ()


class WindowSpec(_Frozen):
    """Parameter window for a process and material over ``thickness_mm = [lo, hi]`` (inclusive)."""

    process: str
    material: str
    thickness_mm: tuple[float, float]
    params: dict[str, RangeSpec]
    choices: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    basis: Basis | None = None
    source: str | None = None
    note: str = ""

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        return _inherit(data, "params")

    @field_validator("thickness_mm")
    @classmethod
    def _order(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1]:
            msg = f"thickness_mm must be [lo, hi] with 0 < lo < hi, got {list(v)}"
            raise ValueError(msg)
        return v


class Condition(_Frozen):
    """``parameter op value``: numeric ``gt``/``lt``/``ge``/``le`` or categorical ``in``/``not_in``."""

    parameter: str
    op: Literal["gt", "lt", "ge", "le", "in", "not_in"]
    value: float | tuple[str, ...]

    @model_validator(mode="after")
    def _check(self) -> Condition:
        categorical = self.op in ("in", "not_in")
        if categorical != isinstance(self.value, tuple):
            msg = f"op {self.op!r} needs a {'list of strings' if categorical else 'number'} as value"
            raise ValueError(msg)
        return self

    def holds(self, current: float | str) -> bool:
        if isinstance(self.value, tuple):
            inside = str(current).lower() in self.value
            return inside if self.op == "in" else not inside
        x = float(current)
        return {
            "gt": x > self.value,
            "lt": x < self.value,
            "ge": x >= self.value,
            "le": x <= self.value,
        }[self.op]

    def describe(self) -> str:
        words = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "in": "in", "not_in": "not in"}
        value = list(self.value) if isinstance(self.value, tuple) else f"{self.value:g}"
        return f"{self.parameter} {words[self.op]} {value}"


class Change(_Frozen):
    """A parameter change: ``relative`` (new = cur * (1 + amount)), ``absolute`` (cur + amount), ``set``."""

    parameter: str
    mode: Literal["relative", "absolute", "set"]
    amount: float | str
    basis: Basis
    source: str

    @model_validator(mode="after")
    def _check(self) -> Change:
        if self.mode != "set" and not isinstance(self.amount, float | int):
            msg = f"mode {self.mode!r} needs a numeric amount, got {self.amount!r}"
            raise ValueError(msg)
        if self.mode != "set" and self.amount == 0:
            msg = "amount must not be 0 (the change would do nothing)"
            raise ValueError(msg)
        return self


class Rule(_Frozen):
    """Defect -> cause -> remedy. Exactly one of ``change`` (a parameter) or ``action`` (a task).

    ``priority`` 1 is tried first; ``confidence`` in (0, 1] is the author's prior that the remedy
    helps when the rule applies. ``pattern``: ``start_end`` rules apply only when pores cluster at
    the seam ends; ``whole_seam`` rules apply unless they do (boosted when pores run along the
    whole seam); ``any`` always applies. ``zone`` (``start`` or ``end``, start_end rules only) says
    which end the remedy addresses; such a rule is skipped when no pore sits at that end.
    """

    id: str
    defects: tuple[Literal["porosity", "spatter"], ...] = Field(min_length=1)
    processes: tuple[str, ...] = (ANY,)
    materials: tuple[str, ...] = (ANY,)
    pattern: Literal["any", "start_end", "whole_seam"] = "any"
    zone: Literal["start", "end"] | None = None
    min_grade: int = Field(1, ge=1, le=3)
    when: tuple[Condition, ...] = ()
    cause: str
    change: Change | None = None
    action: str | None = None
    expected_effect: str
    side_effects: str = ""
    priority: int = Field(ge=1, le=9)
    confidence: float = Field(gt=0, le=1)
    basis: Basis
    source: str

    @model_validator(mode="after")
    def _one_remedy(self) -> Rule:
        if (self.change is None) == (self.action is None):
            msg = f"rule {self.id}: give exactly one of change or action"
            raise ValueError(msg)
        if self.zone is not None and self.pattern != "start_end":
            msg = f"rule {self.id}: zone (start/end) only applies to pattern start_end"
            raise ValueError(msg)
        return self


class ExpertDB(_Frozen):
    """The validated expert database. ``version`` identifies the content (copied into advice)."""

    schema_version: int
    version: str
    sources: dict[str, str]
    parameters: dict[str, ParameterSpec]
    processes: dict[str, ProcessSpec]
    materials: dict[str, MaterialSpec]
    windows: tuple[WindowSpec, ...]
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _cross_check(self) -> ExpertDB:
        if self.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            supported = list(SUPPORTED_SCHEMA_VERSIONS)
            msg = f"schema_version {self.schema_version} not supported; supported: {supported}"
            raise ValueError(msg)
        problems: list[str] = []
        params, sources = set(self.parameters), set(self.sources)

        def need(kind: str, where: str, name: str, valid: set[str]) -> None:
            if name not in valid:
                problems.append(f"{where}: unknown {kind} {name!r}; valid: {sorted(valid)}")

        for pid, proc in self.processes.items():
            for p in proc.parameters:
                need("parameter", f"processes.{pid}.parameters", p, params)
            for p, rng in proc.machine_limits.items():
                need("parameter", f"processes.{pid}.machine_limits", p, set(proc.parameters))
                need("source", f"processes.{pid}.machine_limits.{p}.source", rng.source, sources)
        for i, win in enumerate(self.windows):
            where = f"windows.{i}"
            need("process", f"{where}.process", win.process, set(self.processes))
            need("material", f"{where}.material", win.material, set(self.materials))
            allowed = set(self.processes[win.process].parameters) if win.process in self.processes else params
            for p, rng in win.params.items():
                need("parameter", f"{where}.params", p, allowed)
                need("source", f"{where}.params.{p}.source", rng.source, sources)
            for p, values in win.choices.items():
                need("parameter", f"{where}.choices", p, allowed)
                spec = self.parameters.get(p)
                if spec is not None:
                    for v in values:
                        need("value", f"{where}.choices.{p}", v, set(spec.values))
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            where = f"rules.{i} ({rule.id})"
            if rule.id in seen:
                problems.append(f"{where}: duplicate rule id")
            seen.add(rule.id)
            need("source", f"{where}.source", rule.source, sources)
            for p in rule.processes:
                if p != ANY:
                    need("process", f"{where}.processes", p, set(self.processes))
            for m in rule.materials:
                if m != ANY:
                    need("material", f"{where}.materials", m, set(self.materials))
            for c in rule.when:
                need("parameter", f"{where}.when", c.parameter, params)
            if rule.change is not None:
                need("parameter", f"{where}.change.parameter", rule.change.parameter, params)
                need("source", f"{where}.change.source", rule.change.source, sources)
                problems.extend(self._change_problems(where, rule.change))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _change_problems(self, where: str, change: Change) -> list[str]:
        spec = self.parameters.get(change.parameter)
        if spec is None:
            return []
        if spec.kind == "categorical":
            if change.mode != "set":
                return [
                    f"{where}.change.mode: categorical parameter {change.parameter} only takes mode 'set'"
                ]
            if change.amount not in spec.values:
                return [f"{where}.change.amount: {change.amount!r} not in {list(spec.values)}"]
        elif isinstance(change.amount, str):
            return [f"{where}.change.amount: numeric parameter {change.parameter} needs a number"]
        return []

    # ----- look-ups -------------------------------------------------------------------------
    def process_id(self, name: str) -> str:
        """Canonical process id for ``name`` or an alias; ValueError naming the valid ones."""
        key = name.strip().lower()
        for pid, proc in self.processes.items():
            if key == pid or key in proc.aliases:
                return pid
        valid = sorted(self.processes) + sorted(a for p in self.processes.values() for a in p.aliases)
        if key == "arc":
            arc = [pid for pid in self.processes if pid != "laser_wobble"]
            msg = f"process 'arc' is ambiguous for parameter advice: use one of {arc} (valid: {valid})"
            raise ValueError(msg)
        msg = f"unknown process {name!r}; valid: {valid}"
        raise ValueError(msg)

    def material_id(self, name: str) -> str:
        """Canonical material id for ``name`` or an alias; ValueError naming the valid ones."""
        key = name.strip().lower()
        for mid, mat in self.materials.items():
            if key == mid or key in mat.aliases:
                return mid
        valid = sorted(self.materials) + sorted(a for m in self.materials.values() for a in m.aliases)
        msg = f"unknown material {name!r}; valid: {valid}"
        raise ValueError(msg)

    def window(self, process: str, material: str, thickness_mm: float) -> ParameterWindow:
        """The parameter window for this process, material and thickness (mm).

        Raises ValueError naming the valid processes/materials or the covered thickness ranges.
        """
        pid, mid = self.process_id(process), self.material_id(material)
        candidates = [w for w in self.windows if w.process == pid and w.material == mid]
        spec = next((w for w in candidates if w.thickness_mm[0] <= thickness_mm <= w.thickness_mm[1]), None)
        if spec is None:
            covered = [list(w.thickness_mm) for w in candidates]
            msg = f"no parameter window for {pid} / {mid} at {thickness_mm:g} mm; covered (mm): {covered}"
            raise ValueError(msg)
        return ParameterWindow(
            process=pid,
            material=mid,
            thickness_mm=spec.thickness_mm,
            ranges={p: self._range(p, r) for p, r in spec.params.items()},
            choices=dict(spec.choices),
            db_version=self.version,
            note=spec.note,
        )

    def machine_limits(self, process: str) -> dict[str, NumericRange]:
        """Default machine limits of ``process`` (the real machine's limits should override them)."""
        pid = self.process_id(process)
        return {p: self._range(p, r) for p, r in self.processes[pid].machine_limits.items()}

    def unit(self, parameter: str) -> str:
        spec = self.parameters.get(parameter)
        return spec.unit if spec is not None else ""

    def _range(self, parameter: str, r: RangeSpec) -> NumericRange:
        return NumericRange(r.min, r.max, self.unit(parameter), r.basis, r.source)


def parse_expert_db(data: Mapping[str, Any], source: str = "<expert db>") -> ExpertDB:
    """Validate a mapping into :class:`ExpertDB`; errors name ``source`` and each field path."""
    # Top-level keys starting with "x-" only hold YAML anchors for shared values; they are not data.
    content = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        return ExpertDB.model_validate(content)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"invalid expert database {source}: {problems}"
        raise ExpertDBError(msg) from exc


def load_expert_db(path: Path | None = None) -> ExpertDB:
    """Load and validate the expert database (default: the packaged ``expert_db.yaml``, cached)."""
    if path is None:
        return _default_db()
    return _read(Path(path))


@functools.lru_cache(maxsize=1)
def _default_db() -> ExpertDB:
    return _read(DEFAULT_DB_PATH)


def _read(path: Path) -> ExpertDB:
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except FileNotFoundError as exc:
        msg = f"expert database file {path} does not exist"
        raise ExpertDBError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"expert database file {path} is not valid YAML: {exc}"
        raise ExpertDBError(msg) from exc
    if not isinstance(loaded, dict):
        msg = f"expert database file {path} must hold a mapping, got {type(loaded).__name__}"
        raise ExpertDBError(msg)
    return parse_expert_db(loaded, str(path))
