"""Station keys: files, permissions, key ids, signing."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from inspection.evidence.keys import (
    KeyFileError,
    Signer,
    init_key,
    key_id_for,
    list_keys,
    load_public_keys,
    load_signer,
    verify_signature,
)


def test_init_key_writes_private_0600_public_and_metadata(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    info = init_key(keys, "st-1")
    priv, pub, meta = (keys / f"{info.key_id}{ext}" for ext in (".key", ".pub", ".json"))
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) & 0o077 == 0
    assert priv.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert json.loads(meta.read_text())["station_id"] == "st-1"
    raw = serialization.load_pem_public_key(pub.read_bytes()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert info.key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_list_and_load(tmp_path: Path) -> None:
    a = init_key(tmp_path, "st-1")
    b = init_key(tmp_path, "st-2")
    assert {i.key_id for i in list_keys(tmp_path)} == {a.key_id, b.key_id}
    assert set(load_public_keys(tmp_path)) == {a.key_id, b.key_id}
    assert load_signer(tmp_path, station_id="st-2").key_id == b.key_id
    assert load_signer(tmp_path, key_id=a.key_id).key_id == a.key_id
    with pytest.raises(KeyFileError, match="several evidence keys"):
        load_signer(tmp_path)
    with pytest.raises(KeyFileError, match="no private evidence key"):
        load_signer(tmp_path, station_id="st-9")
    assert list_keys(tmp_path / "absent") == []


def test_refuses_private_key_readable_by_others(tmp_path: Path) -> None:
    info = init_key(tmp_path)
    (tmp_path / f"{info.key_id}.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="mode 0644; it must be 0600"):
        load_signer(tmp_path)


def test_refuses_public_key_under_wrong_name(tmp_path: Path) -> None:
    info = init_key(tmp_path)
    other = Signer.generate()
    (tmp_path / f"{info.key_id}.pub").write_text(other.info.public_key_pem)
    with pytest.raises(KeyFileError, match=f"not the {info.key_id} its name says"):
        list_keys(tmp_path)


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "-lead"])
def test_init_key_refuses_bad_station_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="station id"):
        init_key(tmp_path, bad)


def test_sign_and_verify() -> None:
    signer = Signer.generate("st-1")
    digest = hashlib.sha256(b"record").hexdigest()
    sig = signer.sign_hash(digest)
    assert len(sig) == 128
    assert verify_signature(signer.public_key, digest, sig)
    other = hashlib.sha256(b"other").hexdigest()
    assert not verify_signature(signer.public_key, other, sig)
    assert not verify_signature(Signer.generate().public_key, digest, sig)
    assert not verify_signature(signer.public_key, digest, "zz")
    assert key_id_for(signer.public_key) == signer.key_id
    with pytest.raises(ValueError, match="64-hex-character"):
        signer.sign_hash("abcd")


def test_signer_refuses_mismatched_key_id() -> None:
    a, b = Signer.generate(), Signer.generate()
    with pytest.raises(ValueError, match="does not match key id"):
        Signer(a.info, b.private_key)
