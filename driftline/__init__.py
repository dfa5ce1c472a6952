"""driftline: streaming inference and drift monitoring for models that run on event streams.

Everything is one namespace; docs/ARCHITECTURE.md draws its floors. The entry points:

* ``driftline`` (the command line, :mod:`driftline.cli`);
* :mod:`driftline.contract`: the topic records, settings, Redis keys and signing every floor shares;
* :mod:`driftline.models`, :mod:`driftline.monitoring`, :mod:`driftline.offline`: the pure floors;
* :mod:`driftline.streams`: the worker (Kafka, Redis) and its pure stages;
* :mod:`driftline.embedded`: the embedded stack and the demo; :mod:`driftline.bench`: the benchmarks.
* :mod:`driftline.testing`: an in-memory source and producer, to test a stage without a broker.

Importing this package imports nothing else (the CLI starts fast); ``__version__`` is read from the installed
metadata when first asked for.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("driftline")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'driftline' has no attribute {name!r}")
