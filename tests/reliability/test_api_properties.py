"""Properties of the upload metadata (Hypothesis): whatever JSON the boundary accepts can be signed
and round-trips; whatever it refuses is a 4xx naming the field, never an exception or a 500.

Generated metadata mixes the model's fields with any values: any Unicode (NUL and lone surrogates
included), any integer (far beyond 2**53), any float (NaN, Infinity), nested params, unknown keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection.evidence.canonical import canonical_json
from inspection.service.app import create_app
from inspection.service.auth import Principal
from inspection.service.routes import _metadata
from inspection.service.schemas import PROCESSES, InspectionMetadata
from tests.service.helpers import Keys, auth, make_keys, make_settings, seam_jpeg

FIELDS = tuple(InspectionMetadata.model_fields)
ADMIN = Principal("admin", "admin")

any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
plain_text = st.text(max_size=40)
numbers = st.integers() | st.floats() | st.integers(min_value=-(2**60), max_value=2**60)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text | plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text | plain_text, inner, max_size=4),
    max_leaves=12,
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "station_id": plain_text | any_text | st.integers(),
    "machine_serial": plain_text | any_text,
    "firmware": plain_text | any_text,
    "part_id": plain_text | any_text | st.none(),
    "seam_id": plain_text | any_text,
    "operator_id": plain_text | any_text,
    "process": st.sampled_from(PROCESSES) | plain_text | st.none(),
    "material": st.sampled_from(["stainless", "aluminium"]) | any_text,
    "thickness_mm": numbers | st.floats(min_value=0.01, max_value=300),
    "mm_per_px": numbers | st.floats(min_value=0.001, max_value=10),
    "quality_level": st.sampled_from(["B", "C", "D", "E", ""]),
    "params": st.dictionaries(any_text | plain_text, json_values, max_size=5) | json_values,
}
metadata = st.fixed_dictionaries({}, optional=field_values) | st.dictionaries(
    st.sampled_from([*FIELDS, "colour", "power_w"]), json_values, max_size=4
)


def _text(meta: Any) -> str:
    """JSON text as a station could send it (NaN/Infinity literals, surrogates as \\u escapes)."""
    return json.dumps(meta, allow_nan=True)


def _boundary(text: str) -> InspectionMetadata:
    """What the upload endpoint does with the metadata before the model runs."""
    meta = _metadata(text, ADMIN)
    try:
        meta.to_context()
    except ValueError as exc:
        raise HTTPException(422, f"invalid metadata: {exc}") from exc
    return meta


def _names_a_field(detail: str, meta: Any) -> bool:
    """The detail is about the text as a whole, or starts with a field of the model or of ``meta``."""
    if detail.startswith("metadata"):  # size, depth, not JSON, not an object
        return True
    sent = set(meta) if isinstance(meta, dict) else set()
    m = re.match(r"invalid metadata: (\w+)", detail)
    return m is not None and (m.group(1) in FIELDS or m.group(1) in sent or m.group(1) == "InspectionContext")


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=metadata)
def test_accepted_metadata_round_trips_and_signs_rejected_names_the_field(meta: Any) -> None:
    try:
        accepted = _boundary(_text(meta))
    except HTTPException as exc:
        assert 400 <= exc.status_code < 500
        assert _names_a_field(str(exc.detail), meta), exc.detail
        return
    dumped = accepted.model_dump()
    canonical_json(dumped)  # the evidence record can hold it exactly (raises otherwise)
    again = InspectionMetadata.model_validate(json.loads(json.dumps(dumped, allow_nan=False)))
    assert again == accepted
    assert _boundary(json.dumps(dumped)) == accepted


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[TestClient, Keys]]:
    svc_settings = make_settings(tmp_path_factory.mktemp("props"), tiny_model_dir)
    keys = make_keys(svc_settings)
    with TestClient(create_app(svc_settings)) as client:
        yield client, keys


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(meta=metadata)
def test_upload_answers_201_or_a_4xx_problem_never_5xx(api: tuple[TestClient, Keys], meta: Any) -> None:
    client, keys = api
    r = client.post(
        "/v1/inspections",
        headers=auth(keys.admin),
        files={"image": ("seam.jpg", seam_jpeg(5), "image/jpeg")},
        data={"metadata": _text(meta)},
    )
    assert r.status_code == 201 or 400 <= r.status_code < 500, r.text
    if r.status_code != 201:
        body = r.json()
        assert isinstance(body["detail"], str) and body["code"]
        assert _names_a_field(body["detail"], meta), body["detail"]
