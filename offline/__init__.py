"""The offline half of the life cycle: framing card, data preparation, split, candidates, selection,
evaluation on a locked test set, error analysis, report and export of the model the stream bootstraps from.

Entry points:

* :func:`draft_card`, :func:`load_card` (:mod:`driftline.offline.framing`): the framing card;
* :func:`train` (a file) and :func:`train_frame` (a DataFrame) (:mod:`driftline.offline.train`): train;
* :class:`OnlineArtifact` (:mod:`driftline.offline.export`): the exported River model with its schema;
* :func:`register_dir` (:mod:`driftline.offline.register`): store an output directory as a registry version.

Names are imported when first used: ``import driftline.offline`` imports neither pandas nor scikit-learn.
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "OnlineArtifact": "driftline.offline.export:OnlineArtifact",
        "draft_card": "driftline.offline.framing:draft_card",
        "load_card": "driftline.offline.framing:load_card",
        "register_dir": "driftline.offline.register:register_dir",
        "train": "driftline.offline.train:train",
        "train_frame": "driftline.offline.train:train_frame",
    },
)
