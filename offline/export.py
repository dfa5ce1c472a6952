"""Artifacts of a training run, written into a temporary directory next to the output directory and
renamed into place only when everything succeeded (:func:`atomic_directory`), with a manifest holding the
SHA-256 of every file. :class:`OnlineArtifact` loads the exported River model back, checking its hash.

Files of an output directory::

    metrics.json            every candidate's CV score, chosen model, test metric with CI, verdict
    model.skops             the chosen model (a TrainedModel: preprocessing + estimator + threshold), skops
    baseline.skops          the baseline the verdict compares to, skops (see driftline.offline.skops_model)
    river_model.pkl         the River pipeline the stream bootstraps from
    online_model.json       its task, feature schema, class values and sha256
    reference_profile.json  driftline.models.reference.ReferenceProfile of the training features and scores
    report.html             one self-contained page with the plots
    manifest.json           sha256 and size of every file above, signed when a key is set

``offline train`` signs the manifest with the deployment's key (:func:`sign_manifest`) and ``offline register``
checks that signature before anything of the directory is unpickled (:func:`verify_manifest` with a keyring): a
directory rewritten with matching SHA-256 values still fails, since only the key's holder can sign.

Examples
--------
>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> with atomic_directory(root / "run") as tmp:
...     _ = write_json(tmp / "a.json", {"x": 1})
...     manifest = write_manifest(tmp)
>>> sorted(p.name for p in (root / "run").iterdir()), list(manifest["files"])
(['a.json', 'manifest.json'], ['a.json'])
>>> verify_manifest(root / "run")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract.signing import IntegrityError, Keyring, canonical
from driftline.models.features import FeatureSchema
from driftline.offline.errors import OfflineError
from driftline.offline.prepare import prepare_frame, prepared_rows
from driftline.offline.skops_model import CHOSEN_MODEL

MANIFEST = "manifest.json"
__all__ = ["CHOSEN_MODEL"]
ONLINE_MODEL = "online_model.json"
RIVER_MODEL = "river_model.pkl"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_jsonable(value: Any) -> Any:
    """Numpy scalars/arrays to Python, NaN/inf to ``None`` (JSON has neither).

    >>> to_jsonable({"a": np.float64("nan"), "b": np.arange(2)})
    {'a': None, 'b': [0, 1]}
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as indented JSON (NaN as null)."""
    path.write_text(json.dumps(to_jsonable(value), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def write_pickle(path: Path, value: Any) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def write_manifest(directory: Path) -> dict[str, Any]:
    """Record the SHA-256 and size of every file of ``directory`` in ``manifest.json``."""
    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"files": files}
    write_json(directory / MANIFEST, manifest)
    return manifest


MANIFEST_PURPOSE = "offline-manifest"


def sign_manifest(directory: Path, keyring: Keyring) -> None:
    """Sign ``directory``'s manifest (its file list and digests) with the keyring's current key, in place."""
    path = Path(directory) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["signature"] = keyring.sign(canonical(manifest["files"]), MANIFEST_PURPOSE)
    tmp = path.with_name(f".{MANIFEST}.{uuid.uuid4().hex}")
    write_json(tmp, manifest)
    os.replace(tmp, path)


def verify_manifest(
    directory: Path, names: list[str] | None = None, keyring: Keyring | None = None, trust_unsigned: bool = False
) -> None:
    """Raise :class:`OfflineError` when a listed file is missing or its SHA-256 differs from the manifest; with
    ``keyring``, also when the manifest is unsigned or its signature fails (unless ``trust_unsigned``)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OfflineError(
            f"{directory} has no readable {MANIFEST}: is it a `driftline offline train` output?"
        ) from exc
    if keyring is not None and not trust_unsigned:
        if "signature" not in manifest:
            raise OfflineError(
                f"{path} is not signed: train it with DRIFTLINE_MODEL_HMAC_KEY set, or pass --trust-unsigned "
                "if you trust whoever wrote the directory"
            )
        try:
            keyring.verify(canonical(files), manifest["signature"], MANIFEST_PURPOSE)
        except IntegrityError as exc:
            raise OfflineError(f"{path} refused: {exc}; nothing of {directory} was loaded") from None
    for name in names or list(files):
        if name not in files:
            raise OfflineError(f"{name} is not listed in {path}")
        target = Path(directory) / name
        if not target.is_file():
            raise OfflineError(f"{target} is missing")
        if sha256_file(target) != files[name]["sha256"]:
            raise OfflineError(f"{target} does not match its sha256 in {MANIFEST}")


@contextlib.contextmanager
def atomic_directory(out_dir: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to ``out_dir``; rename it to ``out_dir`` on success, delete it on error.

    An existing non-empty ``out_dir`` is refused unless ``force``; then it is replaced only after success.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_output_dir(out_dir: Path, force: bool) -> None:
    """Refuse a file, or a non-empty directory unless ``force``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OfflineError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise OfflineError(f"output directory {out_dir} is not empty (use --force to replace it)")


@dataclass
class OnlineArtifact:
    """The exported River model with its schema and class values (``online_model.json``)."""

    model: Any
    schema: FeatureSchema
    task: str
    labels: list[Any]
    positive_class: Any
    meta: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> OnlineArtifact:
        """Load ``river_model.pkl`` after checking it against ``online_model.json`` and the manifest.

        The pickle is one this machine wrote (loading a pickle runs code: only load output directories you
        trust). The registry signs it when it is registered.
        """
        directory = Path(directory)
        verify_manifest(directory, [ONLINE_MODEL, RIVER_MODEL])
        meta = json.loads((directory / ONLINE_MODEL).read_text())
        if sha256_file(directory / RIVER_MODEL) != meta["sha256"]:
            raise OfflineError(f"{RIVER_MODEL} does not match the sha256 in {ONLINE_MODEL}")
        with open(directory / RIVER_MODEL, "rb") as handle:
            model = pickle.load(handle)  # noqa: S301 - hash-checked file written by `offline train`
        return cls(
            model, FeatureSchema(meta["schema"]), meta["task"], meta.get("labels", []), meta.get("positive_class"), meta
        )

    def predict_proba(self, X: pd.DataFrame) -> list[dict[Any, float]]:  # noqa: N803 - scikit-learn naming
        """River's scores for raw rows, prepared column-wise the way the offline pipelines prepare them."""
        return [self.model.predict_proba_one(row) for row in prepared_rows(prepare_frame(X, self.schema))]

    def predict(self, X: pd.DataFrame) -> list[Any]:  # noqa: N803
        """River's predictions for raw rows (classes as the stream learner's labels, numbers for regression)."""
        return [self.model.predict_one(row) for row in prepared_rows(prepare_frame(X, self.schema))]
