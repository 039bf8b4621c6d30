"""Importing papermill without paying for a grammar nobody here uses.

papermill reads notebooks through nbformat, which validates them with jsonschema, whose format
checker imports ``rfc3987_syntax`` when it is installed; that module compiles an Earley parser
for RFC 3987 IRIs at import time, about 1.4 s of a cold ``run`` on two cores. No notebook schema
asks for the ``iri`` format, so the grammar is only ever needed by someone else in the process
(schemathesis, say). :func:`defer_iri_grammar` puts a stand-in in its place whose
``is_valid_syntax`` imports the real module on its first call: nothing loses the check, and only
a caller that needs it pays for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_GRAMMAR = "rfc3987_syntax"
_lock = threading.Lock()


def defer_iri_grammar() -> None:
    """Make ``import rfc3987_syntax`` cheap until its parser is used; idempotent."""
    with _lock:
        if _GRAMMAR in sys.modules or "jsonschema" in sys.modules:
            return  # already paid for, or jsonschema has made up its mind
        spec = importlib.util.find_spec(_GRAMMAR)
        if spec is None or spec.submodule_search_locations is None:
            return  # not installed: jsonschema skips the format by itself
        stand_in = types.ModuleType(_GRAMMAR, "Loads rfc3987_syntax on first use.")
        # Submodules (syntax_helpers, utils) are found through the real package's folder.
        stand_in.__path__ = list(spec.submodule_search_locations)
        stand_in.__spec__ = spec
        stand_in.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
        stand_in.__getattr__ = _real_attribute  # type: ignore[method-assign]
        sys.modules[_GRAMMAR] = stand_in


def _is_valid_syntax(term: str, value: str) -> Any:
    return _real_attribute("is_valid_syntax")(term, value)


def _real_attribute(name: str) -> Any:
    # The real package is `from .syntax_helpers import *`; its names are looked up there.
    return getattr(importlib.import_module(f"{_GRAMMAR}.syntax_helpers"), name)


def import_nbformat() -> types.ModuleType:
    """nbformat, imported on first need with the IRI grammar deferred."""
    defer_iri_grammar()
    return importlib.import_module("nbformat")


def import_papermill() -> types.ModuleType:
    """papermill, imported on first need with the IRI grammar deferred."""
    defer_iri_grammar()
    return importlib.import_module("papermill")
