"""The worker: Kafka and Redis I/O around pure stages.

Entry points:

* :class:`Worker`, :func:`run_worker` (:mod:`driftline.streams.app`): one Faust worker process;
* :func:`score_records`, :class:`ScoringPolicy`, :class:`LoadedModel` (:mod:`driftline.streams.scoring_stage`):
  the scoring stage, pure;
* :func:`learn_batch`, :class:`JoinRecord` (:mod:`driftline.streams.learning_stage`): the learning stage, pure;
* :func:`score_file` (:mod:`driftline.streams.batch_job`): batch scoring of a file through the same stage.

Names are imported when first used: ``import driftline.streams`` imports neither Faust nor River.
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "JoinRecord": "driftline.streams.learning_stage:JoinRecord",
        "LoadedModel": "driftline.streams.scoring_stage:LoadedModel",
        "ScoringPolicy": "driftline.streams.scoring_stage:ScoringPolicy",
        "Worker": "driftline.streams.app:Worker",
        "learn_batch": "driftline.streams.learning_stage:learn_batch",
        "run_worker": "driftline.streams.app:run_worker",
        "score_file": "driftline.streams.batch_job:score_file",
        "score_records": "driftline.streams.scoring_stage:score_records",
    },
)
