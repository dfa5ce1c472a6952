"""Pure parts of the model registry: signing, verification, names, references, metadata."""

from __future__ import annotations

import pickle

import pytest

from driftline.contract.signing import IntegrityError, sha256_hex, sign_blob, verify_blob
from driftline.models.version import ModelVersion, UnknownModelError, check_name, dump_model, parse_ref


def test_verify_blob_accepts_the_blob_it_signed() -> None:
    """A blob verified with the key that signed it passes silently."""
    blob = dump_model({"a": 1})
    assert verify_blob(b"k", blob, sha256_hex(blob), sign_blob(b"k", blob)) is None


def test_verify_blob_refuses_a_blob_modified_after_signing() -> None:
    """Flipping one byte of the blob breaks its SHA-256: IntegrityError."""
    blob = dump_model({"a": 1})
    digest, mac = sha256_hex(blob), sign_blob(b"k", blob)
    tampered = blob[:-2] + bytes([blob[-2] ^ 1]) + blob[-1:]
    with pytest.raises(IntegrityError, match="SHA-256"):
        verify_blob(b"k", tampered, digest, mac)


def test_verify_blob_refuses_a_forged_blob_with_a_recomputed_sha256() -> None:
    """An attacker who rewrites the blob and its SHA-256 but lacks the key fails the HMAC."""
    forged = dump_model({"evil": True})
    with pytest.raises(IntegrityError, match="HMAC"):
        verify_blob(b"k", forged, sha256_hex(forged), sign_blob(b"attacker-key", forged))


def test_sign_blob_is_hmac_sha256_hex_and_depends_on_the_key() -> None:
    """The signature is 64 hex chars, deterministic per key, different across keys."""
    blob = b"payload"
    assert sign_blob(b"k", blob) == sign_blob(b"k", blob)
    assert sign_blob(b"k", blob) != sign_blob(b"k2", blob)
    assert len(sign_blob(b"k", blob)) == 64


def test_dump_model_round_trips_through_pickle() -> None:
    """dump_model output unpickles to an equal object."""
    obj = {"w": [1.0, 2.0], "name": "m"}
    assert pickle.loads(dump_model(obj)) == obj


@pytest.mark.parametrize("name", ["", "a:b", "a b", "a@1", "-x", "x" * 129, "é"])
def test_check_name_rejects_names_that_could_collide_in_keys_or_references(name: str) -> None:
    """Separators (':', '@', spaces), empty, too long or non-ASCII names raise ValueError."""
    with pytest.raises(ValueError, match="invalid model name"):
        check_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("m", ("m", None)), ("m@1", ("m", 1)), ("fraud.v2@12", ("fraud.v2", 12))],
)
def test_parse_ref_splits_name_and_optional_version(text: str, expected: tuple[str, int | None]) -> None:
    """NAME and NAME@VERSION parse into (name, version or None)."""
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["m@", "m@0", "m@-1", "m@1.5", "@3", "a:b@1", "m@1@2"])
def test_parse_ref_rejects_malformed_references(text: str) -> None:
    """Missing/zero/negative/non-integer versions and bad names raise ValueError naming the input."""
    with pytest.raises(ValueError, match="bad model reference"):
        parse_ref(text)


def test_model_version_json_round_trip_keeps_every_field() -> None:
    """ModelVersion survives to_json/from_json unchanged, including nested summary data."""
    meta = ModelVersion(
        name="m",
        version=3,
        parent=2,
        created_ms=123,
        sha256="s",
        hmac="h",
        task="multiclass",
        schema={"x": "numeric", "c": "categorical"},
        metrics={"accuracy": 0.9},
        data_summary={"rows": 10, "classes": ["a", "b"]},
        note="retrained",
    )
    assert ModelVersion.from_json(meta.to_json()) == meta
    assert meta.feature_schema().categorical == ["c"]


def test_unknown_model_error_message_is_readable_and_a_key_error() -> None:
    """str() gives the plain message (not KeyError's quoted repr) and it is still a KeyError."""
    err = UnknownModelError("unknown model 'x'")
    assert str(err) == "unknown model 'x'"
    assert isinstance(err, KeyError)
