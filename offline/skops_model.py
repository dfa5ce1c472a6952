"""The chosen model of a training run saved with skops (``model.skops``), a format whose loading cannot run code.

A pickle names any callable and loading it calls it. A skops file is a schema of objects to rebuild, and
:func:`load_model` rebuilds them only when every type the file names is either on skops' own safe list
(scikit-learn's estimators and transformers) or in :data:`ALLOWED_TYPES`, the exact names the candidates'
pipelines hold (a few scikit-learn and NumPy internals, River's for a chosen ``river`` candidate, driftline's
pipeline classes). A file naming anything else is refused before one object is built. Output directories
of older releases (``model.joblib``, a pickle) are refused with a one-line message: train again.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> path = Path(tempfile.mkdtemp()) / CHOSEN_MODEL
>>> _ = save_model(path, LogisticRegression(C=2.0))
>>> load_model(path).C
2.0
>>> allowed("sklearn.tree._tree.Tree"), allowed("numpy.load"), allowed("builtins.eval")
(True, False, False)
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

#: Every type outside skops' own safe list that the candidates' fitted pipelines hold (binary, multiclass and
#: regression), by exact name: a whole package is not trusted (``numpy.load`` or ``numpy.memmap`` would be).
ALLOWED_TYPES = frozenset(
    {
        "builtins.frozenset",
        "collections.Counter",
        "functools.partial",  # skops checks the function it wraps like any other name
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "sklearn.utils.validation.check_array",
        "river._river_rust.vectordict.VectorDict",
        "river.compose.pipeline.Pipeline",
        "river.compose.union.TransformerUnion",
        "river.linear_model.lin_reg.LinearRegression",
        "river.linear_model.log_reg.LogisticRegression",
        "river.multiclass.ovr.OneVsRestClassifier",
        "river.optim.initializers.Zeros",
        "river.optim.losses.Log",
        "river.optim.losses.Squared",
        "river.optim.schedulers.Constant",
        "river.optim.sgd.SGD",
        "river.preprocessing.one_hot.OneHotEncoder",
        "river.preprocessing.scale.StandardScaler",
        "driftline.models.features.FeatureSchema",
        "driftline.models.specs.SelectPresent",
        "driftline.offline.candidates.AveragingEnsemble",
        "driftline.offline.candidates.RiverEstimator",
        "driftline.offline.candidates.TrainedModel",
        "driftline.offline.prepare.SchemaPreparer",
    }
)


def allowed(type_name: str) -> bool:
    """True when ``type_name`` (``module.Class`` as skops writes it) is in :data:`ALLOWED_TYPES`."""
    return type_name in ALLOWED_TYPES


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
