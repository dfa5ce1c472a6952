"""Pure parts of the model registry: signing, verification, names, references, metadata."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from driftline.contract.signing import IntegrityError, Keyring
from driftline.models.version import ModelVersion, UnknownModelError, check_name, dump_model, parse_ref


def test_signed_metadata_covers_every_field_that_decides_what_is_served() -> None:
    """Changing the version number, name, schema, task, parent, blob digest or reference digest changes the
    signed bytes, so a signature over one version never verifies a copy of it edited in any of these."""
    meta = ModelVersion("m", 1, None, 0, "blob-sha", "", "binary", {"x": "numeric", "y": "numeric"})
    ring = Keyring(b"k")
    signature = ring.sign(meta.signed_bytes(), "model-version")
    edits = [
        {"version": 2},
        {"name": "n"},
        {"schema": {"x": "numeric"}},
        {"task": "regression"},
        {"parent": 1},
        {"sha256": "other"},
        {"reference_sha256": "other"},
    ]
    for edit in edits:
        with pytest.raises(IntegrityError):
            ring.verify(replace(meta, **edit).signed_bytes(), signature, "model-version")
    ring.verify(replace(meta, hmac=signature).signed_bytes(), signature, "model-version")


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
