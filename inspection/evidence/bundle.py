"""Claim bundles: one machine's evidence exported as a zip that the warranty fund verifies offline.

Layout of ``claim.zip``::

    manifest.json            canonical JSON: format, serial, period, scope, chain head, the subject
                             records' (seq, hash), and {path: {sha256, bytes}} of every other file
    manifest.sig             (when exported with a key) {"key_id", "signature"}: Ed25519 over
                             the 32 bytes of sha256(manifest.json)
    records.jsonl            one canonical JSON object per line, by seq, each with a ``role``:
                             ``subject`` (full record of this machine: payload, hashes, signature),
                             ``chain`` (full record of another machine, full-chain exports only),
                             ``link`` / ``head`` (stub: seq, record_hash, signature, key_id only; the
                             record before a subject record / the chain head at export time)
    images/<sha256>.<ext>    the inspected image of every subject inspection record
    overlays/<sha256>.png    drawn findings (when an overlay function was given)
    keys/<key_id>.pub        PEM public keys of every key that signed an included record
    report/claim_report.html, report/claim_report.pdf, report/trend.png, README.txt
    audit/miss_rate.json     the miss-rate estimate of results accepted without review, from the
                             store's reviewed audit samples (all machines, and this machine), see
                             :mod:`inspection.evidence.audit`; listed in the manifest like any file

What a subset proves: every subject record is unaltered and signed by a listed key, and was
appended directly after a signed record whose hash it names (its ``link`` stub, content withheld
for other customers' privacy). It does not prove that the export holds every record of this
machine; a ``full_chain`` export (all records, seq 1 to the head) does.

Only a signed manifest binds the list of subject records: without ``manifest.sig`` anyone can drop a
record together with its manifest entry. :func:`verify_bundle` therefore fails an unsigned bundle
(``manifest_unsigned``) whenever a signature is required, which it is whenever trusted keys are given
(``weldinspect evidence verify-bundle --keys DIR``, or ``--require-signature``).

Bundle problem codes (stable; the record codes of :mod:`inspection.evidence.verify` also apply):

=======================  ==============================================================
``bundle_invalid``       not a zip, unsafe or duplicate member names, no manifest/records
``corrupt_member``       a zip member cannot be decompressed or fails its CRC
``manifest_unsigned``    no ``manifest.sig`` although a signature is required
``manifest_signature``   ``manifest.sig`` is unreadable or does not verify
``bad_key``              a ``keys/*.pub`` file is unreadable, misnamed or differs from a trusted key
``unlisted_file``        a member that ``manifest.json`` does not list
``missing_file``         a listed member that is not in the zip
``file_mismatch``        a member whose bytes do not hash to the manifest's sha256
``record_missing``       a subject record listed in the manifest is not in ``records.jsonl``
``record_unlisted``      a subject record in ``records.jsonl`` that the manifest does not list
``record_mismatch``      the manifest lists another hash for a subject record
``missing_predecessor``  the record before a subject record is not in the bundle
``duplicate_record``     a seq appears twice in ``records.jsonl``
``promotion_missing``    a model named by a subject record lacks the promotion record the manifest lists
``promotion_mismatch``   a listed promotion record has another hash or names another model
=======================  ==============================================================

Promotion records (role ``promotion``, :mod:`inspection.evidence.bundle_models`): for every model the
subject inspection records name, the latest promotion/rollback record naming its sha256, with the
link stub before it; ``manifest.json`` lists them under ``models`` (``null`` = unpromoted, a note).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from inspection import __version__
from inspection.evidence.bundle_models import MANIFEST_MODELS, PromotionIndex, check_bundle_models
from inspection.evidence.canonical import GENESIS_HASH, CanonicalError, canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import KeyFileError, Signer, key_id_for, load_public_pem, public_key_pem
from inspection.evidence.ledger import KIND_INSPECTION, KIND_REVIEW, EvidenceRecord, format_time, iter_records
from inspection.evidence.promotion import MODEL_KINDS
from inspection.evidence.report import (
    ComplianceFn,
    build_claim_report,
    render_html,
    render_pdf,
    trend_png,
)
from inspection.evidence.verify import (
    ChainChecker,
    Problem,
    VerifyReport,
    check_record,
    check_signature,
    registry_keys,
)
from inspection.store.db import Store
from inspection.store.images import EXTENSIONS
from inspection.store.models import as_utc, utcnow
from inspection.types import InspectionResult

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "weldinspect-claim-bundle/1"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
RECORDS = "records.jsonl"
MISS_RATE = "audit/miss_rate.json"
ROLES_FULL = ("subject", "chain", "promotion")
ROLES_STUB = ("link", "head")
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB per file
MAX_JSON_BYTES = 256 << 20  # manifest / records read into memory
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError)
"""What reading a damaged member raises: bad CRC, broken deflate stream, truncated data, unknown method."""

OverlayFn = Callable[[bytes, InspectionResult], bytes | None]
"""(image bytes, result) -> PNG bytes of the drawn overlay, or None to skip that image."""


class BundleError(ValueError):
    """A bundle cannot be exported (e.g. the store fails verification); the message says why."""


@dataclass(frozen=True)
class BundleSummary:
    """What :func:`export_bundle` wrote."""

    path: Path
    serial: str
    subject_records: int
    inspections: int
    reviews: int
    images: int
    overlays: int
    head_seq: int | None
    head_hash: str | None
    sha256: str
    signed: bool
    promotions: int = 0


def verify_steps(key_ids: Sequence[str], head: tuple[int, str] | None) -> tuple[str, ...]:
    """The "how to verify" steps printed in the report and README.txt."""
    keys = ", ".join(key_ids) or "(none)"
    head_text = "none" if head is None else f"seq {head[0]}, hash {head[1]}"
    return (
        f"Check that the signing key ids ({keys}) are the station keys the manufacturer registered with "
        "the fund (on the station: weldinspect keys list). Only then do the signatures say who wrote "
        "the records.",
        "Run: weldinspect evidence verify-bundle claim.zip --keys DIR (DIR = the registered public keys). "
        "It re-hashes every file against manifest.json, recomputes each record's SHA-256, verifies each "
        "Ed25519 signature and each hash link, and re-hashes every image; it exits non-zero naming the "
        "first problem.",
        "Without weldinspect: each line of records.jsonl has payload (canonical JSON text), record_hash "
        "and signature. SHA-256 of the payload's UTF-8 bytes must equal record_hash; the signature (hex) "
        "must verify with keys/<key_id>.pub over the 32 bytes of record_hash; payload.prev_hash must equal "
        "the record_hash of the line with seq - 1 (64 zeros for seq 1).",
        "Each inspection's photo is images/<sha256>.<ext>; the SHA-256 of its bytes must equal "
        "payload.data.image.sha256. Overlays and this report are renderings, not evidence.",
        f"Chain head at export: {head_text}. Compare it with heads reported to the fund earlier "
        "(weldinspect evidence head): a chain rewritten after a head was reported no longer contains it.",
    )


def _scope_note(full_chain: bool, n_subject: int) -> str:
    if full_chain:
        return (
            f"Full-chain export: all records from seq 1 to the head are included ({n_subject} concern "
            "this machine), so the bundle also proves that no record of this machine up to the head was "
            "left out."
        )
    return (
        f"Subset export: the {n_subject} records of this machine, each with the hash and signature of the "
        "record before it (content withheld). It proves each record is unaltered, signed, and was chained "
        "right after a signed record; it does not prove that no other record of this machine exists "
        "(use --full-chain for that)."
    )


@dataclass
class _Selection:
    subjects: list[EvidenceRecord]
    chain: list[EvidenceRecord]
    stubs: dict[int, tuple[str, str, str | None, str | None]]  # seq -> (role, hash, signature, key id)
    head: tuple[int, str] | None
    promotions: list[EvidenceRecord]  # role "promotion" (subset exports; in "chain" for full ones)
    models: dict[str, Any]  # the manifest's models section


def _in_period(created_at: str, since: datetime | None, until: datetime | None) -> bool:
    t = as_utc(datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S.%fZ"))
    return (since is None or t >= as_utc(since)) and (until is None or t < as_utc(until))


def _select(
    store: Store,
    serial: str,
    since: datetime | None,
    until: datetime | None,
    full_chain: bool,
    keys: Mapping[str, Ed25519PublicKey],
) -> _Selection:
    subjects: list[EvidenceRecord] = []
    chain: list[EvidenceRecord] = []
    meta: dict[int, tuple[str, str | None, str | None]] = {}
    inspection_ids: set[str] = set()
    checker = ChainChecker()
    index = PromotionIndex()
    with store.session() as s:
        for rec in iter_records(s):
            problems = check_record(rec, keys) + checker.feed(rec)
            if problems:
                msg = (
                    f"the store fails verification at {problems[0]}; run `weldinspect evidence verify` first"
                )
                raise BundleError(msg)
            meta[rec.seq] = (rec.record_hash, rec.signature, rec.key_id)
            index.feed(rec)
            data = rec.data
            chosen = False
            if rec.kind == KIND_INSPECTION:
                ctx = data.get("context") or {}
                if ctx.get("machine_serial") == serial and _in_period(rec.created_at, since, until):
                    inspection_ids.add(str(data.get("inspection_id")))
                    chosen = True
            elif rec.kind == KIND_REVIEW and str(data.get("inspection_id")) in inspection_ids:
                chosen = True
            if chosen:
                subjects.append(rec)
            elif full_chain:
                chain.append(rec)
    head = None if not meta else (max(meta), meta[max(meta)][0])
    promotions, models = index.for_subjects(subjects)
    if full_chain:
        promotions = []
    stubs: dict[int, tuple[str, str, str | None, str | None]] = {}
    if not full_chain:
        subject_seqs = {r.seq for r in subjects + promotions}
        for rec in subjects + promotions:
            prev = rec.seq - 1
            if prev >= 1 and prev not in subject_seqs:
                h, sig, kid = meta[prev]
                stubs[prev] = ("link", h, sig, kid)
        if head is not None and head[0] not in subject_seqs and head[0] not in stubs:
            h, sig, kid = meta[head[0]]
            stubs[head[0]] = ("head", h, sig, kid)
    return _Selection(subjects, chain, stubs, head, promotions, models)


def _records_jsonl(sel: _Selection) -> bytes:
    lines: list[tuple[int, str]] = []
    for role, recs in (("subject", sel.subjects), ("chain", sel.chain), ("promotion", sel.promotions)):
        lines.extend((r.seq, canonical_json({**r.to_json(), "role": role})) for r in recs)
    for seq, (role, h, sig, kid) in sel.stubs.items():
        lines.append(
            (
                seq,
                canonical_json({"seq": seq, "role": role, "record_hash": h, "signature": sig, "key_id": kid}),
            )
        )
    return "".join(text + "\n" for _, text in sorted(lines)).encode("utf-8")


def export_bundle(
    store: Store,
    out: Path,
    *,
    serial: str,
    since: datetime | None = None,
    until: datetime | None = None,
    overlay: OverlayFn | None = None,
    signer: Signer | None = None,
    compliance: ComplianceFn | None = None,
    compliance_source: str = "",
    full_chain: bool = False,
    trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> BundleSummary:
    """Write the claim bundle of machine ``serial`` (records created in [since, until)) to ``out``.

    Refuses (:class:`BundleError`) when the store's chain does not verify or there is nothing to
    export. ``signer`` signs the manifest. ``overlay`` draws overlays; ``compliance`` judges settings.
    """
    if not serial:
        msg = "a machine serial is required"
        raise BundleError(msg)
    db_keys = registry_keys(store)
    keys = dict(trusted_keys) if trusted_keys is not None else db_keys
    sel = _select(store, serial, since, until, full_chain, keys)
    if not sel.subjects:
        msg = f"no evidence records for machine {serial!r} in the period {since} .. {until}"
        raise BundleError(msg)
    files: dict[str, bytes] = {}
    n_overlays = 0
    inspections = [r for r in sel.subjects if r.kind == KIND_INSPECTION]
    for rec in inspections:
        image = rec.data.get("image") or {}
        sha = str(image.get("sha256"))
        data = store.images.read(sha)
        if hashlib.sha256(data).hexdigest() != sha:
            msg = f"image {sha} of record seq {rec.seq} is damaged; run `weldinspect evidence verify`"
            raise BundleError(msg)
        files[f"images/{sha}{EXTENSIONS.get(str(image.get('media_type')), '.bin')}"] = data
        if overlay is not None:
            n_overlays += _add_overlay(store, rec, data, overlay, files)
    files[RECORDS] = _records_jsonl(sel)
    used_keys = {r.key_id for r in sel.subjects + sel.chain + sel.promotions if r.key_id} | {
        s[3] for s in sel.stubs.values() if s[3]
    }
    if signer is not None:
        used_keys.add(signer.key_id)
    for kid in sorted(used_keys):
        pub = signer.public_key if signer is not None and kid == signer.key_id else db_keys.get(kid)
        if pub is None:
            msg = f"public key {kid} is not in the store's key registry"
            raise BundleError(msg)
        files[f"keys/{kid}.pub"] = public_key_pem(pub).encode("ascii")
    generated = format_time(clock())
    record_keys = tuple(sorted({r.key_id for r in sel.subjects if r.key_id}))
    steps = verify_steps(record_keys, sel.head)
    machine = store.get_machine(serial)
    miss_rate = _miss_rate(store, serial)
    model_records = sel.promotions + [r for r in sel.chain if r.kind in MODEL_KINDS]
    report = build_claim_report(
        sel.subjects,
        serial=serial,
        generated_at=generated,
        compliance=compliance,
        compliance_source=compliance_source,
        since=None if since is None else format_time(since),
        until=None if until is None else format_time(until),
        head=sel.head,
        machine_model=None if machine is None else machine.model,
        scope_note=_scope_note(full_chain, len(sel.subjects)),
        verify_steps=steps,
        miss_rate=miss_rate,
        models=sel.models,
        model_records=model_records,
    )
    trend = trend_png(report)
    files["report/trend.png"] = trend
    files["report/claim_report.html"] = render_html(report, trend).encode("utf-8")
    files["report/claim_report.pdf"] = render_pdf(report, trend)
    files["README.txt"] = _readme(serial, full_chain, len(sel.subjects), steps).encode("utf-8")
    files[MISS_RATE] = (canonical_json(miss_rate) + "\n").encode("utf-8")
    manifest = {
        "format": BUNDLE_FORMAT,
        "tool": f"weldinspect {__version__}",
        "created_at": generated,
        "serial": serial,
        "since": report.since,
        "until": report.until,
        "scope": "full_chain" if full_chain else "subset",
        "head": None if sel.head is None else {"seq": sel.head[0], "record_hash": sel.head[1]},
        "subject_records": [[r.seq, r.record_hash] for r in sel.subjects],
        MANIFEST_MODELS: sel.models,
        "files": {name: {"sha256": sha256_hex(b), "bytes": len(b)} for name, b in sorted(files.items())},
    }
    manifest_bytes = canonical_json(manifest).encode("utf-8")
    members: list[tuple[str, bytes]] = [(MANIFEST, manifest_bytes)]
    if signer is not None:
        sig = {"key_id": signer.key_id, "signature": signer.sign_hash(sha256_hex(manifest_bytes))}
        members.append((MANIFEST_SIG, canonical_json(sig).encode("utf-8")))
    members.extend(sorted(files.items()))
    digest = _write_zip(Path(out), members)
    n_reviews = sum(1 for r in sel.subjects if r.kind == KIND_REVIEW)
    logger.info("exported %d records of %s to %s", len(sel.subjects), serial, out)
    return BundleSummary(
        Path(out), serial, len(sel.subjects), len(inspections), n_reviews,
        sum(1 for n in files if n.startswith("images/")), n_overlays,
        None if sel.head is None else sel.head[0], None if sel.head is None else sel.head[1],
        digest, signer is not None, len(sel.promotions),
    )  # fmt: skip


def _add_overlay(
    store: Store, rec: EvidenceRecord, image: bytes, overlay: OverlayFn, files: dict[str, bytes]
) -> int:
    inspection_id = str(rec.data.get("inspection_id"))
    row = store.get_inspection(inspection_id)
    if row is None:
        return 0
    try:
        png = overlay(image, row.to_result())
    except Exception as exc:  # an overlay is a convenience: never fail the export for it
        logger.warning("overlay for inspection %s failed: %s", inspection_id, exc)
        return 0
    if not png:
        return 0
    files[f"overlays/{row.image_sha256}.png"] = png
    return 1


def _miss_rate(store: Store, serial: str) -> dict[str, Any]:
    """``audit/miss_rate.json``'s body: the estimate over every machine and over ``serial`` alone
    (the claim report states the same figures)."""
    from inspection.evidence.audit import miss_rate_from_store

    return {
        "all_machines": miss_rate_from_store(store).to_json(),
        "this_machine": miss_rate_from_store(store, serial=serial).to_json(),
    }


def _readme(serial: str, full_chain: bool, n: int, steps: Sequence[str]) -> str:
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))
    return (
        f"Warranty claim evidence bundle: machine {serial}\n\n{_scope_note(full_chain, n)}\n\n"
        f"How to verify\n{body}\n\nThe report (report/claim_report.pdf, .html) is a rendering of the signed "
        "records in records.jsonl; the records are the evidence.\n"
    )


def _write_zip(out: Path, members: Sequence[tuple[str, bytes]]) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w") as zf:
                for name, data in members:
                    stored = name.startswith(("images/", "overlays/")) or name.endswith(".png")
                    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    h = hashlib.sha256()
    with out.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- offline verification -------------------------------------------------------------------------


class CorruptMemberError(BundleError):
    """A zip member cannot be read back: bad CRC, broken compressed data, truncated."""


def _hash_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    try:
        with zf.open(info) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                n += len(chunk)
                if n > MAX_MEMBER_BYTES:
                    msg = f"{info.filename} is larger than {MAX_MEMBER_BYTES} bytes"
                    raise BundleError(msg)
                h.update(chunk)
    except _ZIP_READ_ERRORS as exc:
        msg = f"{info.filename} is corrupt in the zip ({type(exc).__name__}: {exc})"
        raise CorruptMemberError(msg) from exc
    return h.hexdigest(), n


def _read_small(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        with zf.open(name) as fh:
            data = fh.read(MAX_JSON_BYTES + 1)
    except _ZIP_READ_ERRORS as exc:
        msg = f"{name} is corrupt in the zip ({type(exc).__name__}: {exc})"
        raise CorruptMemberError(msg) from exc
    if len(data) > MAX_JSON_BYTES:
        msg = f"{name} is larger than {MAX_JSON_BYTES} bytes"
        raise BundleError(msg)
    return data


def _read_problem(exc: BundleError | CanonicalError | UnicodeDecodeError, name: str, code: str) -> Problem:
    if isinstance(exc, CorruptMemberError):
        return Problem("corrupt_member", str(exc))
    return Problem(code, f"{name}: {exc}")


def _bundle_keys(
    zf: zipfile.ZipFile, names: Sequence[str]
) -> tuple[dict[str, Ed25519PublicKey], list[Problem]]:
    keys: dict[str, Ed25519PublicKey] = {}
    problems: list[Problem] = []
    for name in names:
        m = re.fullmatch(r"keys/([0-9a-f]{16})\.pub", name)
        if not m:
            continue
        try:
            pub = load_public_pem(_read_small(zf, name), name)
        except KeyFileError as exc:
            problems.append(Problem("bad_key", str(exc)))
            continue
        except BundleError as exc:
            problems.append(_read_problem(exc, name, "bad_key"))
            continue
        if key_id_for(pub) != m.group(1):
            problems.append(Problem("bad_key", f"{name} holds key {key_id_for(pub)}, not {m.group(1)}"))
            continue
        keys[m.group(1)] = pub
    return keys, problems


def _parse_records(text: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line)
        except CanonicalError as exc:
            yield i, None, f"{RECORDS} line {i}: {exc}"
            continue
        if not isinstance(obj, dict):
            yield i, None, f"{RECORDS} line {i}: not a JSON object"
            continue
        yield i, obj, ""


def _as_record(obj: Mapping[str, Any]) -> EvidenceRecord:
    return EvidenceRecord(
        seq=int(obj["seq"]),
        record_id=str(obj["record_id"]),
        kind=str(obj["kind"]),
        created_at=str(obj["created_at"]),
        payload=str(obj["payload"]),
        prev_hash=str(obj["prev_hash"]),
        record_hash=str(obj["record_hash"]),
        signature=obj.get("signature"),
        key_id=obj.get("key_id"),
    )


def verify_bundle(
    path: Path,
    trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
    *,
    require_signature: bool | None = None,
) -> VerifyReport:
    """Verify a claim bundle offline (no database): files, records, signatures, links, images, manifest.

    With ``trusted_keys`` the signatures must verify with those keys (the bundle's own ``keys/``
    are then only cross-checked); without, the bundle's keys are used and the report says so.
    ``require_signature`` (default: whether ``trusted_keys`` were given) makes a missing
    ``manifest.sig`` a ``manifest_unsigned`` problem: an unsigned manifest is what a downgrade
    (drop a record and its manifest entry, strip the signature) leaves behind.
    A damaged zip member is a ``corrupt_member`` problem, never an exception.
    """
    if require_signature is None:
        require_signature = trusted_keys is not None
    problems: list[Problem] = []
    notes: list[str] = []
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        return VerifyReport(
            0, 0, (Problem("bundle_invalid", f"{path} is not a readable zip file: {exc}"),), None, None
        )
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        bad_names = [n for n in names if not _SAFE_NAME.match(n) or ".." in n.split("/")]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if bad_names or dupes:
            detail = f"unsafe member names {bad_names[:5]}" if bad_names else f"duplicate members {dupes[:5]}"
            return VerifyReport(0, 0, (Problem("bundle_invalid", f"{path}: {detail}"),), None, None)
        if MANIFEST not in names or RECORDS not in names:
            return VerifyReport(
                0, 0, (Problem("bundle_invalid", f"{path} lacks {MANIFEST} or {RECORDS}"),), None, None
            )
        try:
            manifest_bytes = _read_small(zf, MANIFEST)
            manifest = parse_json(manifest_bytes.decode("utf-8"))
        except (BundleError, CanonicalError, UnicodeDecodeError) as exc:
            return VerifyReport(0, 0, (_read_problem(exc, MANIFEST, "bundle_invalid"),), None, None)
        shape = _manifest_shape_error(manifest)
        if shape is not None:
            return VerifyReport(0, 0, (Problem("bundle_invalid", f"{MANIFEST}: {shape}"),), None, None)
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            fmt = manifest.get("format") if isinstance(manifest, dict) else None
            return VerifyReport(
                0,
                0,
                (Problem("bundle_invalid", f"{MANIFEST} format {fmt!r}; expected {BUNDLE_FORMAT!r}"),),
                None,
                None,
            )
        bundle_keys, key_problems = _bundle_keys(zf, names)
        problems.extend(key_problems)
        if trusted_keys is not None:
            keys: Mapping[str, Ed25519PublicKey] = trusted_keys
            for kid, pub in bundle_keys.items():
                if kid in trusted_keys and public_key_pem(trusted_keys[kid]) != public_key_pem(pub):
                    problems.append(Problem("bad_key", f"keys/{kid}.pub differs from the trusted key {kid}"))
            notes.append(f"signatures checked against {len(keys)} trusted key(s): {', '.join(sorted(keys))}")
        else:
            keys = bundle_keys
            notes.append(
                f"signatures checked against the bundle's own keys ({', '.join(sorted(keys)) or 'none'}); "
                "confirm these key ids with the manufacturer or pass --keys"
            )
        problems.extend(_check_files(zf, infos, manifest))
        problems.extend(_check_manifest_sig(zf, names, manifest_bytes, keys, notes, require_signature))
        rec_problems, full, n_images = _check_records(zf, names, manifest, keys, notes)
        problems.extend(rec_problems)
    head = manifest.get("head") or {}
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    notes.append(f"scope: {manifest.get('scope')}")
    return VerifyReport(
        full, n_images, tuple(problems), head.get("seq"), head.get("record_hash"), tuple(notes)
    )


def _manifest_shape_error(manifest: Any) -> str | None:
    """Why ``manifest`` does not have the fields the checks read, or None (format is checked after)."""
    if not isinstance(manifest, dict):
        return f"a JSON object is expected, not {type(manifest).__name__}"
    if manifest.get("format") != BUNDLE_FORMAT:
        return None  # reported with the expected format by the caller
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()
    ):
        return 'files must be an object {path: {"sha256": hex, "bytes": n}}'
    subjects = manifest.get("subject_records")
    if not isinstance(subjects, list) or not all(
        isinstance(x, list) and len(x) == 2 and isinstance(x[0], int) and isinstance(x[1], str)
        for x in subjects
    ):
        return "subject_records must be a list of [seq, record_hash] pairs"
    head = manifest.get("head")
    if head is not None and not isinstance(head, dict):
        return 'head must be null or {"seq": n, "record_hash": hex}'
    return None


def _check_files(
    zf: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo], manifest: Mapping[str, Any]
) -> list[Problem]:
    out: list[Problem] = []
    listed = manifest.get("files") or {}
    present = {i.filename: i for i in infos}
    for name in sorted(present):
        if name in (MANIFEST, MANIFEST_SIG):
            continue
        if name not in listed:
            out.append(Problem("unlisted_file", f"{name} is in the zip but not in {MANIFEST}"))
            continue
        try:
            digest, _ = _hash_member(zf, present[name])
        except BundleError as exc:
            out.append(_read_problem(exc, name, "file_mismatch"))
            continue
        if digest != listed[name].get("sha256"):
            out.append(
                Problem(
                    "file_mismatch",
                    f"{name} hashes to {digest}, {MANIFEST} says {listed[name].get('sha256')}",
                )
            )
    for name in sorted(set(listed) - set(present)):
        out.append(Problem("missing_file", f"{name} is listed in {MANIFEST} but not in the zip"))
    return out


def _check_manifest_sig(
    zf: zipfile.ZipFile,
    names: Sequence[str],
    manifest_bytes: bytes,
    keys: Mapping[str, Ed25519PublicKey],
    notes: list[str],
    required: bool,
) -> list[Problem]:
    if MANIFEST_SIG not in names:
        if required:
            return [
                Problem(
                    "manifest_unsigned",
                    f"the bundle has no {MANIFEST_SIG}, but a signed manifest is required (trusted keys "
                    "given or --require-signature): without it records could have been removed together "
                    "with their manifest entries",
                )
            ]
        notes.append(
            "manifest unsigned: a record removed together with its manifest entry would go unnoticed "
            "(pass --keys or --require-signature to reject unsigned bundles)"
        )
        return []
    try:
        sig = parse_json(_read_small(zf, MANIFEST_SIG).decode("utf-8"))
    except (BundleError, CanonicalError, UnicodeDecodeError) as exc:
        if isinstance(exc, CorruptMemberError):
            return [Problem("corrupt_member", str(exc))]
        return [Problem("manifest_signature", f"{MANIFEST_SIG} unreadable: {exc}")]
    if not isinstance(sig, dict):
        return [Problem("manifest_signature", f"{MANIFEST_SIG} is not a JSON object")]
    found = check_signature(sha256_hex(manifest_bytes), sig.get("signature"), sig.get("key_id"), keys)
    if found:
        return [Problem("manifest_signature", f"{MANIFEST}: {found[0].code}: {found[0].message}")]
    notes.append(f"manifest signed by key {sig.get('key_id')}")
    return []


def _check_records(
    zf: zipfile.ZipFile,
    names: Sequence[str],
    manifest: Mapping[str, Any],
    keys: Mapping[str, Ed25519PublicKey],
    notes: list[str],
) -> tuple[list[Problem], int, int]:
    out: list[Problem] = []
    try:
        text = _read_small(zf, RECORDS).decode("utf-8")
    except (BundleError, UnicodeDecodeError) as exc:
        return [_read_problem(exc, RECORDS, "bundle_invalid")], 0, 0
    hashes: dict[int, str] = {}
    full: list[EvidenceRecord] = []
    roles: dict[int, str] = {}
    for line_no, obj, error in _parse_records(text):
        if obj is None:
            out.append(Problem("payload_invalid", error))
            continue
        role = obj.get("role")
        try:
            seq = int(obj["seq"])
            if role in ROLES_FULL:
                rec = _as_record(obj)
                out.extend(check_record(rec, keys))
                full.append(rec)
            elif role in ROLES_STUB:
                out.extend(
                    check_signature(
                        str(obj["record_hash"]), obj.get("signature"), obj.get("key_id"), keys, seq=seq
                    )
                )
            else:
                out.append(
                    Problem("payload_invalid", f"{RECORDS} line {line_no}: unknown role {role!r}", seq)
                )
                continue
        except (KeyError, TypeError, ValueError) as exc:
            out.append(Problem("payload_invalid", f"{RECORDS} line {line_no}: missing or bad field ({exc})"))
            continue
        if seq in hashes:
            out.append(Problem("duplicate_record", f"seq {seq} appears more than once in {RECORDS}", seq))
        hashes[seq] = str(obj["record_hash"])
        roles[seq] = str(role)
    for rec in full:
        if rec.seq == 1:
            expected: str | None = GENESIS_HASH
        else:
            expected = hashes.get(rec.seq - 1)
        if expected is None:
            out.append(
                Problem(
                    "missing_predecessor",
                    f"record seq {rec.seq - 1} (the one before) is not in the bundle",
                    rec.seq,
                    rec.record_id,
                )
            )
        elif rec.prev_hash != expected:
            out.append(
                Problem(
                    "broken_link",
                    f"prev_hash {rec.prev_hash} is not the hash {expected} of seq {rec.seq - 1}",
                    rec.seq,
                    rec.record_id,
                )
            )
    listed = {int(s): str(h) for s, h in manifest.get("subject_records") or []}
    subjects = {r.seq: r for r in full if roles.get(r.seq) == "subject"}
    for seq in sorted(set(listed) - set(subjects)):
        out.append(
            Problem("record_missing", f"subject record seq {seq} is listed in {MANIFEST} but missing", seq)
        )
    for seq in sorted(set(subjects) - set(listed)):
        out.append(
            Problem(
                "record_unlisted",
                f"subject record seq {seq} is not listed in {MANIFEST}",
                seq,
                subjects[seq].record_id,
            )
        )
    for seq in sorted(set(listed) & set(subjects)):
        if listed[seq] != subjects[seq].record_hash:
            out.append(
                Problem(
                    "record_mismatch",
                    f"{MANIFEST} lists hash {listed[seq]} for seq {seq}",
                    seq,
                    subjects[seq].record_id,
                )
            )
    model_problems, model_notes = check_bundle_models(manifest, full, subjects.values())
    out.extend(model_problems)
    notes.extend(model_notes)
    if manifest.get("scope") == "full_chain":
        checker = ChainChecker()
        for rec in sorted(full, key=lambda r: r.seq):
            out.extend(p for p in checker.feed(rec) if p.code == "seq_gap")
    n_images = 0
    image_names = {n.split("/", 1)[1].split(".", 1)[0]: n for n in names if n.startswith("images/")}
    for rec in subjects.values():
        if rec.kind != KIND_INSPECTION:
            continue
        try:
            sha = str((rec.data.get("image") or {}).get("sha256"))
        except (CanonicalError, ValueError):
            continue
        member = image_names.get(sha)
        if member is None:
            out.append(Problem("image_missing", f"image {sha} is not in the bundle", rec.seq, rec.record_id))
            continue
        n_images += 1
        try:
            digest, _ = _hash_member(zf, zf.getinfo(member))
        except BundleError as exc:
            code = "corrupt_member" if isinstance(exc, CorruptMemberError) else "image_mismatch"
            out.append(Problem(code, str(exc), rec.seq, rec.record_id))
            continue
        if digest != sha:
            out.append(
                Problem(
                    "image_mismatch",
                    f"{member} hashes to {digest}, the record says {sha}",
                    rec.seq,
                    rec.record_id,
                )
            )
    return out, len(full), n_images


def read_bundle_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a bundle's ``records.jsonl`` (for tools and tests; no verification)."""
    with zipfile.ZipFile(path) as zf:
        return [
            json.loads(line) for line in _read_small(zf, RECORDS).decode("utf-8").splitlines() if line.strip()
        ]
