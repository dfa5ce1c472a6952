"""The chosen model of a training run saved with skops (``model.skops``), a format whose loading cannot run code.

A pickle names any callable and loading it calls it. A skops file is a schema of objects to rebuild, and
:func:`load_model` rebuilds them only when every type the file names is in the allow-list: scikit-learn,
NumPy and SciPy types, Python's plain containers, and the few driftline classes a trained pipeline is made
of (:data:`OWN_TYPES`); River's, for a chosen ``river`` candidate. A file naming anything else is refused
before one object is built. Output directories of older releases (``model.joblib``, a pickle) are refused
with a one-line message: train again.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> path = Path(tempfile.mkdtemp()) / CHOSEN_MODEL
>>> _ = save_model(path, LogisticRegression(C=2.0))
>>> load_model(path).C
2.0
>>> allowed("sklearn.linear_model._logistic.LogisticRegression"), allowed("builtins.eval")
(True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io

from driftline.offline.errors import OfflineError

CHOSEN_MODEL = "model.skops"
BASELINE_MODEL = "baseline.skops"
#: The pickle older releases wrote in its place.
LEGACY_CHOSEN_MODEL = "model.joblib"

#: Packages whose types a trained pipeline is built from (River: the ``river`` candidate, the worker's own library).
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "river")
#: Plain Python types skops names in the schema of a fitted pipeline.
TRUSTED_BUILTINS = frozenset(
    {
        "builtins.frozenset",
        "collections.Counter",
        "functools.partial",  # skops checks the function it wraps like any other type
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.set",
        "builtins.slice",
        "builtins.type",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)
#: driftline's own classes in a trained pipeline (plain attribute holders: rebuilt without calling code).
OWN_TYPES = frozenset(
    {
        "driftline.offline.candidates.TrainedModel",
        "driftline.offline.candidates.AveragingEnsemble",
        "driftline.offline.candidates.RiverEstimator",
        "driftline.models.specs.SelectPresent",
        "driftline.offline.prepare.SchemaPreparer",
        "driftline.models.features.FeatureSchema",
    }
)


def allowed(type_name: str) -> bool:
    """True when ``type_name`` (``module.Class`` as skops writes it) is in the allow-list."""
    return type_name in TRUSTED_BUILTINS or type_name in OWN_TYPES or type_name.partition(".")[0] in TRUSTED_PACKAGES


def save_model(path: Path, model: Any) -> Path:
    """Write ``model`` with skops; ``OfflineError`` when it holds a type :func:`load_model` would refuse."""
    data = skops.io.dumps(model)
    refused = [name for name in skops.io.get_untrusted_types(data=data) if not allowed(name)]
    if refused:
        raise OfflineError(f"the chosen model holds types outside the skops allow-list: {', '.join(refused)}")
    Path(path).write_bytes(data)
    return Path(path)


def refuse_legacy(directory: Path) -> None:
    """``OfflineError`` (one line: train again) for an output directory of an older release (a pickle)."""
    if (Path(directory) / LEGACY_CHOSEN_MODEL).is_file() and not (Path(directory) / CHOSEN_MODEL).is_file():
        raise OfflineError(
            f"{directory} holds a {LEGACY_CHOSEN_MODEL} pickle from an older release, which is no longer loaded "
            "(loading a pickle runs code): run `driftline offline train` again"
        )


def load_model(path: Path) -> Any:
    """Rebuild the model of a skops file whose types are all allowed; else ``OfflineError``, nothing built.

    Check the directory's signed manifest first (:func:`driftline.offline.export.verify_manifest`).
    """
    path = Path(path)
    refuse_legacy(path.parent)
    data = path.read_bytes()
    untrusted = skops.io.get_untrusted_types(data=data)
    refused = [name for name in untrusted if not allowed(name)]
    if refused:
        raise OfflineError(f"{path} refused: it names types outside the allow-list: {', '.join(refused)}")
    return skops.io.loads(data, trusted=untrusted)
