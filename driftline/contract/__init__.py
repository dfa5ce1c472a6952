"""The ground floor: the vocabulary every other package shares, importing nothing of ours.

Entry points:

* the topic records and their parsers: :class:`Event`, :class:`Label`, :class:`Prediction`, :class:`Alert`,
  :func:`parse_event`, :func:`parse_label`, :func:`dumps`, :class:`RecordError`, the alert vocabulary
  :data:`AlertKind` and :data:`Severity` (:mod:`driftline.contract.records`; their JSON Schemas are in
  ``docs/contract/``, from :mod:`driftline.contract.schemas`);
* :class:`Settings`, every ``DRIFTLINE_*`` setting (:mod:`driftline.contract.settings`);
* :mod:`keys`, the Redis keyspace; :mod:`signing`, the signing primitives (both modules of this package).

Names are imported when first used (:func:`driftline.contract.exports.lazy_exports`).
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Alert": "driftline.contract.records:Alert",
        "AlertKind": "driftline.contract.records:AlertKind",
        "Event": "driftline.contract.records:Event",
        "Label": "driftline.contract.records:Label",
        "Prediction": "driftline.contract.records:Prediction",
        "RecordError": "driftline.contract.records:RecordError",
        "Settings": "driftline.contract.settings:Settings",
        "Severity": "driftline.contract.records:Severity",
        "dumps": "driftline.contract.records:dumps",
        "keys": "driftline.contract.keys",
        "parse_event": "driftline.contract.records:parse_event",
        "parse_label": "driftline.contract.records:parse_label",
        "signing": "driftline.contract.signing",
    },
)
