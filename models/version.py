"""What the registry knows of a model version, and how models are named (pure, no I/O).

Examples
--------
>>> check_name("fraud-v2"), parse_ref("fraud@3"), parse_ref("fraud")
('fraud-v2', ('fraud', 3), ('fraud', None))
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field
from typing import Any

from driftline.contract.records import MODEL_NAME_PATTERN
from driftline.contract.signing import canonical
from driftline.models.features import FeatureSchema


class UnknownModelError(KeyError):
    """An unknown model name or version (the message says which)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown model"


@dataclass(frozen=True)
class ModelVersion:
    """Metadata of one stored model version (the blob and the reference profile are stored apart).

    ``hmac`` is the signature (:mod:`driftline.contract.signing`) of every other field, :meth:`signed_bytes`:
    the blob's and the reference profile's digests stand for them, so changing any of them, or the version
    number, name, schema, task or parent, breaks it.
    """

    name: str
    version: int
    parent: int | None
    created_ms: int
    sha256: str
    hmac: str
    task: str
    schema: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    data_summary: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    reference_sha256: str | None = None

    def signed_bytes(self) -> bytes:
        """What :attr:`hmac` signs: the canonical encoding of every field but ``hmac``.

        >>> from dataclasses import replace
        >>> v = ModelVersion("m", 1, None, 0, "ab", "sig", "binary", {"x": "numeric"})
        >>> v.signed_bytes() == replace(v, hmac="other").signed_bytes() != replace(v, version=2).signed_bytes()
        True
        """
        document = asdict(self)
        del document["hmac"]
        return canonical(document)

    def feature_schema(self) -> FeatureSchema:
        """The :class:`~driftline.models.features.FeatureSchema` the model expects.

        >>> v = ModelVersion("m", 1, None, 0, "", "", "binary", {"x": "numeric"})
        >>> v.feature_schema().kinds
        {'x': 'numeric'}
        """
        return FeatureSchema(self.schema)  # type: ignore[arg-type]

    def to_json(self) -> str:
        """Serialize the metadata as JSON.

        >>> v = ModelVersion("m", 2, 1, 5, "ab", "cd", "regression", {"x": "numeric"}, {"mae": 0.5})
        >>> ModelVersion.from_json(v.to_json()) == v
        True
        """
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelVersion:
        """Metadata from :meth:`to_json` output."""
        return cls(**json.loads(text))


def dump_model(model: Any) -> bytes:
    """Pickle ``model`` (River models are pickles)."""
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name (letters, digits, ``._-``; at most 128), else raise ValueError.

    >>> check_name("a:b")
    Traceback (most recent call last):
    ...
    ValueError: invalid model name 'a:b': use letters, digits, '.', '_' or '-' (at most 128)
    """
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (at most 128)")
    return name


def parse_ref(text: str) -> tuple[str, int | None]:
    """Split ``NAME`` or ``NAME@VERSION`` into the name and the version (None when absent).

    >>> parse_ref("m@x")
    Traceback (most recent call last):
    ...
    ValueError: bad model reference 'm@x': expected NAME or NAME@VERSION with VERSION a positive integer
    """
    name, sep, version = text.partition("@")
    error = ValueError(f"bad model reference {text!r}: expected NAME or NAME@VERSION with VERSION a positive integer")
    if not sep:
        try:
            return check_name(name), None
        except ValueError:
            raise error from None
    if not version.isdigit() or int(version) < 1:
        raise error
    try:
        return check_name(name), int(version)
    except ValueError:
        raise error from None
