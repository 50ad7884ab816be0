"""Claim bundles: export, offline verification, and every tamper case on the zip."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from inspection.evidence.bundle import (
    MANIFEST,
    MANIFEST_SIG,
    RECORDS,
    BundleError,
    export_bundle,
    read_bundle_records,
    verify_bundle,
)
from inspection.evidence.canonical import canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import Signer, public_key_pem
from inspection.evidence.ledger import Ledger, record_inspection
from inspection.store import Store
from tests.evidence.factories import (
    CONFIG_SHA,
    StepClock,
    make_result,
    open_store,
    png_bytes,
    window_compliance,
)

Files = dict[str, bytes]


class History:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store: Store = open_store(tmp)
        self.signer = Signer.generate("st-1")
        self.ledger = Ledger(self.store, self.signer, clock=StepClock(step=timedelta(days=1)))
        self.seqs: dict[str, list[int]] = {"A": [], "B": []}
        # A A B A A B A A B ... : runs of consecutive A records, interleaved with B
        for i in range(9):
            serial = "B" if i % 3 == 2 else "A"
            img = png_bytes(i)
            result = make_result(img, serial=serial, porosity=2 if i in (3, 4) else 0)
            _, rec = record_inspection(self.store, self.ledger, result, img, config_sha256=CONFIG_SHA)
            self.seqs[serial].append(rec.seq)

    def export(self, name: str = "claim.zip", **kw: object) -> Path:
        out = self.tmp / name
        kw.setdefault("signer", self.signer)
        export_bundle(self.store, out, serial="A", compliance=window_compliance, **kw)  # type: ignore[arg-type]
        return out


@pytest.fixture
def hist(tmp_path: Path) -> History:
    return History(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, Path]:
    """One history and one signed export shared by the read-only tests (exports render a PDF: slow-ish)."""
    h = History(tmp_path_factory.mktemp("bundle"))
    return h, h.export()


def _read(path: Path) -> Files:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path: Path, files: Files) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _fix_manifest(files: Files, *, resign: Signer | None = None) -> None:
    """What a careful tamperer without the key does: recompute the manifest's file hashes."""
    manifest = parse_json(files[MANIFEST].decode())
    manifest["files"] = {
        n: {"sha256": sha256_hex(b), "bytes": len(b)}
        for n, b in sorted(files.items())
        if n not in (MANIFEST, MANIFEST_SIG)
    }
    lines = [json.loads(x) for x in files[RECORDS].decode().splitlines()]
    manifest["subject_records"] = [[x["seq"], x["record_hash"]] for x in lines if x["role"] == "subject"]
    files[MANIFEST] = canonical_json(manifest).encode()
    if resign is not None:
        sig = {"key_id": resign.key_id, "signature": resign.sign_hash(sha256_hex(files[MANIFEST]))}
        files[MANIFEST_SIG] = canonical_json(sig).encode()


def _edit_lines(files: Files, fn: Callable[[list[dict[str, object]]], list[dict[str, object]]]) -> None:
    lines = [json.loads(x) for x in files[RECORDS].decode().splitlines()]
    files[RECORDS] = "".join(canonical_json(x) + "\n" for x in fn(lines)).encode()


def test_round_trip(shared: tuple[History, Path]) -> None:
    hist, path = shared
    report = verify_bundle(path)
    assert report.ok, [str(p) for p in report.problems]
    files = _read(path)
    records = read_bundle_records(path)
    subjects = [r["seq"] for r in records if r["role"] == "subject"]
    assert subjects == hist.seqs["A"]
    stubs = {r["seq"]: r["role"] for r in records if r["role"] in ("link", "head")}
    # every A record whose predecessor is a B record carries that predecessor as a link stub; no payloads leak
    assert stubs == {3: "link", 6: "link", 9: "head"}
    assert all("payload" not in r for r in records if r["role"] != "subject")
    assert len([n for n in files if n.startswith("images/")]) == len(hist.seqs["A"])
    assert f"keys/{hist.signer.key_id}.pub" in files and MANIFEST_SIG in files
    assert {"report/claim_report.pdf", "report/claim_report.html", "report/trend.png", "README.txt"} <= set(
        files
    )
    assert files["report/claim_report.pdf"].startswith(b"%PDF")
    assert report.records == len(hist.seqs["A"]) and report.images == len(hist.seqs["A"])
    assert report.head_seq == 9
    assert any("manifest signed" in n for n in report.notes)


def test_trusted_keys(shared: tuple[History, Path]) -> None:
    hist, path = shared
    assert verify_bundle(path, {hist.signer.key_id: hist.signer.public_key}).ok
    stranger = Signer.generate()
    report = verify_bundle(path, {stranger.key_id: stranger.public_key})
    assert report.first_problem is not None and report.first_problem.code == "unknown_key"


def _resign_everything(files: Files, rogue: Signer) -> None:
    """A forger with their own key: rebuild, relink and re-sign every record, replace the bundle's keys."""

    def resign(lines: list[dict[str, object]]) -> list[dict[str, object]]:
        new_hash: dict[int, str] = {}
        for x in sorted(lines, key=lambda x: int(str(x["seq"]))):
            seq = int(str(x["seq"]))
            x["key_id"] = rogue.key_id
            if x["role"] == "subject":
                env = parse_json(str(x["payload"]))
                env["key_id"] = rogue.key_id
                if seq - 1 in new_hash:
                    env["prev_hash"] = x["prev_hash"] = new_hash[seq - 1]
                x["payload"] = canonical_json(env)
                x["record_hash"] = sha256_hex(str(x["payload"]))
            x["signature"] = rogue.sign_hash(str(x["record_hash"]))
            new_hash[seq] = str(x["record_hash"])
        return lines

    _edit_lines(files, resign)
    for name in [n for n in files if n.startswith("keys/")]:
        del files[name]
    files[f"keys/{rogue.key_id}.pub"] = public_key_pem(rogue.public_key).encode()


def edited_record(files: Files) -> None:
    def edit(lines: list[dict[str, object]]) -> list[dict[str, object]]:
        for x in lines:
            if x["seq"] == 4:
                x["payload"] = str(x["payload"]).replace('"grade":2', '"grade":0', 1)
        return lines

    _edit_lines(files, edit)


def swapped_image(files: Files) -> None:
    name = sorted(n for n in files if n.startswith("images/"))[0]
    files[name] = png_bytes(999)


def removed_record(files: Files) -> None:
    _edit_lines(files, lambda lines: [x for x in lines if x["seq"] != 4])


def removed_link_stub(files: Files) -> None:
    _edit_lines(files, lambda lines: [x for x in lines if x["seq"] != 3])


def extra_file(files: Files) -> None:
    files["notes.txt"] = b"trust me"


def deleted_file(files: Files) -> None:
    del files["report/trend.png"]


def _first_image_seq(path: Path, files: Files) -> int:
    name = sorted(n for n in files if n.startswith("images/"))[0]
    sha = name.split("/")[1].split(".")[0]
    for x in read_bundle_records(path):
        if x["role"] == "subject" and sha in str(x["payload"]):
            return int(x["seq"])
    raise AssertionError(sha)


@pytest.mark.parametrize(
    ("tamper", "fix", "code", "seq"),
    [
        (edited_record, False, "hash_mismatch", 4),
        (edited_record, True, "hash_mismatch", 4),
        (swapped_image, True, "image_mismatch", "first-image"),
        (removed_record, False, "record_missing", 4),
        (removed_record, True, "missing_predecessor", 5),
        (removed_link_stub, True, "missing_predecessor", 4),
        (extra_file, False, "unlisted_file", None),
        (deleted_file, False, "missing_file", None),
    ],
)
def test_tampered_bundle(
    shared: tuple[History, Path],
    tmp_path: Path,
    tamper: Callable[[Files], None],
    fix: bool,
    code: str,
    seq: int | str | None,
) -> None:
    _, path = shared
    files = _read(path)
    expected_seq = _first_image_seq(path, files) if seq == "first-image" else seq
    tamper(files)
    if fix:
        _fix_manifest(files)
    report = verify_bundle(_write(tmp_path / "tampered.zip", files))
    assert not report.ok
    assert report.first_problem is not None
    assert (report.first_problem.code, report.first_problem.seq) == (code, expected_seq), [
        str(p) for p in report.problems
    ]
    if fix:  # the manifest was rewritten without the exporter's key
        assert "manifest_signature" in {p.code for p in report.problems}


def test_forger_with_own_key_is_caught_by_trusted_keys(shared: tuple[History, Path], tmp_path: Path) -> None:
    hist, original = shared
    files = _read(original)
    rogue = Signer.generate("st-1")
    _resign_everything(files, rogue)
    _fix_manifest(files, resign=rogue)
    path = _write(tmp_path / "forged.zip", files)
    assert verify_bundle(path).ok  # self-consistent with its own keys ...
    report = verify_bundle(
        path, {hist.signer.key_id: hist.signer.public_key}
    )  # ... not with the registered one
    assert report.first_problem is not None and report.first_problem.code == "unknown_key"


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"../evil": b"x", MANIFEST: b"{}", RECORDS: b""}, "unsafe member names"),
        ({"/abs": b"x", MANIFEST: b"{}", RECORDS: b""}, "unsafe member names"),
        ({RECORDS: b""}, "lacks manifest.json"),
        ({MANIFEST: b'{"format":"other"}', RECORDS: b""}, "expected 'weldinspect-claim-bundle/1'"),
        ({MANIFEST: b"not json", RECORDS: b""}, "manifest.json: not valid JSON"),
    ],
)
def test_malformed_bundles(tmp_path: Path, files: Files, match: str) -> None:
    report = verify_bundle(_write(tmp_path / "bad.zip", files))
    assert report.first_problem is not None
    assert report.first_problem.code == "bundle_invalid" and match in report.first_problem.message


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "claim.zip"
    path.write_bytes(b"PK but not really")
    report = verify_bundle(path)
    assert report.first_problem is not None and report.first_problem.code == "bundle_invalid"


def test_full_chain_export_proves_completeness(hist: History) -> None:
    path = hist.export(full_chain=True)
    records = read_bundle_records(path)
    assert [r["seq"] for r in records] == list(range(1, 10))
    assert {r["role"] for r in records} == {"subject", "chain"}
    assert verify_bundle(path).ok
    files = _read(path)
    _edit_lines(files, lambda lines: [x for x in lines if x["seq"] != 3])  # drop another machine's record
    _fix_manifest(files)
    report = verify_bundle(_write(hist.tmp / "gap.zip", files))
    assert {("seq_gap", 4), ("missing_predecessor", 4)} <= {(p.code, p.seq) for p in report.problems}


def test_period_filter_and_unsigned_manifest(hist: History) -> None:
    with hist.store.session() as s:
        from inspection.evidence.ledger import get_record

        rec = get_record(s, hist.seqs["A"][2])
    assert rec is not None
    from datetime import datetime

    since = datetime.strptime(rec.created_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    path = hist.export("period.zip", since=since, signer=None)
    subjects = [r["seq"] for r in read_bundle_records(path) if r["role"] == "subject"]
    assert subjects == hist.seqs["A"][2:]
    report = verify_bundle(path)
    assert report.ok and any("manifest unsigned" in n for n in report.notes)


def test_overlays_are_optional_and_failures_skipped(hist: History) -> None:
    calls: list[str] = []

    def overlay(image: bytes, result: object) -> bytes | None:
        sha = getattr(result, "image_sha256", "")
        calls.append(sha)
        if len(calls) == 1:
            raise RuntimeError("drawing failed")
        buf = io.BytesIO(b"\x89PNG fake overlay " + sha.encode())
        return buf.getvalue()

    path = hist.export("overlays.zip", overlay=overlay)
    names = [n for n in _read(path) if n.startswith("overlays/")]
    assert len(calls) == len(hist.seqs["A"]) and len(names) == len(calls) - 1
    assert verify_bundle(path).ok


def test_export_refuses_a_tampered_store_or_nothing_to_export(hist: History) -> None:
    with pytest.raises(BundleError, match="no evidence records for machine 'Z'"):
        export_bundle(hist.store, hist.tmp / "z.zip", serial="Z")
    con = sqlite3.connect(hist.tmp / "weld.db")
    con.execute("UPDATE evidence_records SET payload = payload || ' ' WHERE seq = 2")
    con.commit()
    con.close()
    with pytest.raises(BundleError, match="fails verification at record seq 2"):
        hist.export()
    assert not (hist.tmp / "claim.zip").exists()


def _flip_in_member(path: Path, out: Path, member: str) -> Path:
    """Flip one byte inside ``member``'s (compressed) data, leaving the zip's directory intact."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    name_len, extra_len = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start + min(3, info.compress_size - 1)] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def _downgraded(files: Files) -> None:
    """Drop the last subject record with its manifest entry and strip the manifest signature."""
    last = max(
        int(x["seq"])
        for x in (json.loads(line) for line in files[RECORDS].decode().splitlines())
        if x["role"] == "subject"
    )
    _edit_lines(files, lambda lines: [x for x in lines if x["seq"] != last])
    _fix_manifest(files)
    del files[MANIFEST_SIG]


def test_downgrade_is_caught_when_a_signature_is_required(
    shared: tuple[History, Path], tmp_path: Path
) -> None:
    hist, path = shared
    trusted = {hist.signer.key_id: hist.signer.public_key}
    files = _read(path)
    _downgraded(files)
    downgraded = _write(tmp_path / "downgraded.zip", files)
    # nothing else in the bundle shows the removal: without a required signature it verifies, with a note
    lax = verify_bundle(downgraded)
    assert lax.ok and any("manifest unsigned" in n for n in lax.notes)
    for report in (verify_bundle(downgraded, trusted), verify_bundle(downgraded, require_signature=True)):
        assert [p.code for p in report.problems] == ["manifest_unsigned"]
    # a genuinely unsigned export fails the same way once a signature is required
    unsigned = _read(path)
    del unsigned[MANIFEST_SIG]
    report = verify_bundle(_write(tmp_path / "unsigned.zip", unsigned), trusted)
    assert [p.code for p in report.problems] == ["manifest_unsigned"]
    assert verify_bundle(path, trusted).ok  # the signed original still passes


@pytest.mark.parametrize("member", [MANIFEST_SIG, MANIFEST, RECORDS, "report/claim_report.html", "images/"])
def test_corrupt_member_is_a_verdict_not_a_traceback(
    shared: tuple[History, Path], tmp_path: Path, member: str
) -> None:
    _, path = shared
    if member == "images/":
        member = sorted(n for n in _read(path) if n.startswith("images/"))[0]
    report = verify_bundle(_flip_in_member(path, tmp_path / "flipped.zip", member))
    assert not report.ok
    # compressed members fail to inflate; stored ones (images) fail their CRC: both are named
    assert any(p.code == "corrupt_member" and member in p.message for p in report.problems), report.problems


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        ({"format": "weldinspect-claim-bundle/1", "files": [], "subject_records": []}, "files must be"),
        (
            {"format": "weldinspect-claim-bundle/1", "files": {}, "subject_records": [1]},
            "subject_records must",
        ),
        (
            {"format": "weldinspect-claim-bundle/1", "files": {}, "subject_records": [], "head": 3},
            "head must",
        ),
        ([1, 2], "a JSON object is expected"),
    ],
)
def test_manifest_of_the_wrong_shape(tmp_path: Path, manifest: object, match: str) -> None:
    files = {MANIFEST: canonical_json(manifest).encode(), RECORDS: b""}
    report = verify_bundle(_write(tmp_path / "bad.zip", files))
    assert report.first_problem is not None
    assert report.first_problem.code == "bundle_invalid" and match in report.first_problem.message
