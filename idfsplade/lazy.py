"""The one way this package defers an import: a package's ``__getattr__`` (PEP 562) that imports the
module holding a name on first access, so that ``from idfsplade.model import DocumentEncoder`` works
while ``import idfsplade.model`` (what the torch-free search path does) loads no torch.

Each package lists its deferred names once, as module paths in strings, which
``tests/test_import_graph.py`` reads as import edges. Written here (a dozen lines) rather than taken
from scientific-python's ``lazy_loader`` (checked: its ``attach`` does the same from relative
submodule names, and would be a dependency for this alone); ir_measures likewise keeps its deferred
imports in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names[name]`` is the module to import ``name`` from.

    Usage, in ``package/__init__.py``: ``__getattr__ = lazy_attributes(__name__, {"Name": "pkg.module"})``.
    Nothing is cached, so a test that patches ``pkg.module.Name`` sees the patch through ``pkg.Name``.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(module), name)

    return __getattr__
