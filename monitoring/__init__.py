"""Monitoring, pure (no I/O): data, prediction and concept drift, data quality, performance estimates, the
false-alarm budget and the alert policy.

Entry points:

* :class:`Monitor` (:mod:`driftline.monitoring.monitor`), configured by :class:`MonitorConfig`
  (:mod:`driftline.monitoring.config`): ``observe_*`` calls in, typed alerts out;
* :class:`Detector` and :func:`register` (:mod:`driftline.monitoring.detector`): the detector protocol;
* :class:`AlertPolicy` (:mod:`driftline.monitoring.policy`);
* :class:`BatchDrift` (:mod:`driftline.monitoring.batch_drift`): drift of a whole batch against a reference.

Names are imported when first used: ``import driftline.monitoring`` imports neither numpy nor scipy.
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "AlertPolicy": "driftline.monitoring.policy:AlertPolicy",
        "BatchDrift": "driftline.monitoring.batch_drift:BatchDrift",
        "Detector": "driftline.monitoring.detector:Detector",
        "Monitor": "driftline.monitoring.monitor:Monitor",
        "MonitorConfig": "driftline.monitoring.config:MonitorConfig",
        "register": "driftline.monitoring.detector:register",
    },
)
