"""Run a callback right after a module is imported (or now, if it already is).

Why: the registrations the CPU platform needs live in heavy verl modules (the FSDP engine
pulls in most of verl). Importing them from the plugin would slow down every process that
imports verl; instead we wait until verl itself imports them, then register.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable
from types import ModuleType

_lock = threading.Lock()
_pending: dict[str, list[Callable[[ModuleType], None]]] = {}


class _AfterImportLoader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader, name: str):
        self._wrapped = wrapped
        self._name = name

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def __getattr__(self, name):  # get_source, get_code, is_package, ... of the real loader
        return getattr(self._wrapped, name)

    def exec_module(self, module):
        # hand the module its real loader back, so inspect/linecache/pickle see nothing unusual
        module.__loader__ = self._wrapped
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._wrapped
        self._wrapped.exec_module(module)
        with _lock:
            callbacks = _pending.pop(self._name, [])
        for cb in callbacks:
            cb(module)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _AfterImportLoader(spec.loader, fullname)
                return spec
        return None


_finder = _AfterImportFinder()


def after_import(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` once ``module_name`` has finished executing."""
    module = sys.modules.get(module_name)
    if module is not None:
        callback(module)
        return
    with _lock:
        _pending.setdefault(module_name, []).append(callback)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
