"""The embedded stack (Tansu broker and redis-server as child processes on loopback) and the demo.

Entry points:

* :func:`embedded_stack` (:mod:`driftline.embedded.stack`): start both, stop them by pid on exit, and give
  their URLs as an :class:`EmbeddedStack`;
* :func:`run_demo` (:mod:`driftline.embedded.demo`): ``driftline demo`` end to end.
"""

from driftline.contract.exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "EmbeddedStack": "driftline.embedded.stack:EmbeddedStack",
        "embedded_stack": "driftline.embedded.stack:embedded_stack",
        "run_demo": "driftline.embedded.demo:run_demo",
    },
)
