"""Front doors that cost nothing: a package names its entry points in ``__all__`` and imports each one from its
module only when it is first used (PEP 562 module ``__getattr__``), so ``import driftline.models`` does not
import River, and ``driftline --help`` stays cheap.

>>> exports = {"sha256_hex": "driftline.contract.signing:sha256_hex", "keys": "driftline.contract.keys"}
>>> __getattr__, __all__ = lazy_exports("demo", exports)
>>> __all__
['keys', 'sha256_hex']
>>> __getattr__("sha256_hex")(b"")[:12], __getattr__("keys").__name__
('e3b0c44298fc', 'driftline.contract.keys')
>>> __getattr__("nothing")
Traceback (most recent call last):
...
AttributeError: module 'demo' has no attribute 'nothing'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package`` from ``{name: "module:attribute"}`` (or ``"module"`` for a
    module), each imported when first used (the same "module:attribute" form as the CLI's command table)."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's name
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        imported = importlib.import_module(module)
        return getattr(imported, attribute) if attribute else imported

    return __getattr__, sorted(exports)
