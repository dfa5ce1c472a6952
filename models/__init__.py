"""Models: the feature schema and its one preparation, River model specs, scoring, the online learner,
champion and challenger, versions and the Redis registry.

Entry points:

* :class:`FeatureSchema`, :func:`infer_schema`, :func:`category_text` (:mod:`driftline.models.features`);
* :func:`build_model`, :func:`infer_task`, :func:`infer_task_of` (:mod:`driftline.models.specs`);
* :func:`score_batch` (:mod:`driftline.models.scoring`), :class:`OnlineLearner` (:mod:`driftline.models.learner`);
* :class:`ModelRegistry` (:mod:`driftline.models.registry`), :class:`ModelVersion`, :func:`parse_ref`
  (:mod:`driftline.models.version`), :class:`ReferenceProfile` (:mod:`driftline.models.reference`);
* :func:`bootstrap_model`, :func:`synthetic_stream` (:mod:`driftline.models.bootstrap`).

Names are imported when first used: ``import driftline.models`` imports neither River nor numpy.
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "FeatureSchema": "driftline.models.features:FeatureSchema",
        "ModelRegistry": "driftline.models.registry:ModelRegistry",
        "ModelVersion": "driftline.models.version:ModelVersion",
        "OnlineLearner": "driftline.models.learner:OnlineLearner",
        "ReferenceProfile": "driftline.models.reference:ReferenceProfile",
        "bootstrap_model": "driftline.models.bootstrap:bootstrap_model",
        "build_model": "driftline.models.specs:build_model",
        "category_text": "driftline.models.features:category_text",
        "infer_schema": "driftline.models.features:infer_schema",
        "infer_task": "driftline.models.specs:infer_task",
        "infer_task_of": "driftline.models.specs:infer_task_of",
        "parse_ref": "driftline.models.version:parse_ref",
        "score_batch": "driftline.models.scoring:score_batch",
        "synthetic_stream": "driftline.models.bootstrap:synthetic_stream",
    },
)
