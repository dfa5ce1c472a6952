"""Benchmarks behind ``driftline bench ...``: each module's ``run(...)`` times both sides of a ratio in one run
and returns the figures that ``driftline bench NAME`` prints as JSON (recorded in BENCHMARKS.md).

Entry points: :mod:`~driftline.bench.cli`, :mod:`~driftline.bench.pipeline`, :mod:`~driftline.bench.stage`,
:mod:`~driftline.bench.clients`, :mod:`~driftline.bench.peers`, :mod:`~driftline.bench.parity`,
:mod:`~driftline.bench.drift`, :mod:`~driftline.bench.offline`, :mod:`~driftline.bench.score` (each imported
when first used).
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        name: f"driftline.bench.{name}"
        for name in ("cli", "clients", "drift", "offline", "parity", "peers", "pipeline", "score", "stage")
    },
)
