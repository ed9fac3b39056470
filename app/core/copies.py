"""Deep copies of the models' data at a fraction of `model_copy(deep=True)`'s cost.

A tick copies its release once (app/release/engine.py `decided`): with the judge's carried latency
histograms (lists of float pairs), `copy.deepcopy` visited every number and was ~7% of a tick's CPU
(benchmarks/profile_tick.py). Numbers, strings and tuples of them cannot change, so they are shared;
lists, dicts and models are copied, as deeply as they go. The result equals the deep copy and shares
nothing that can be changed with the original.
"""

from __future__ import annotations

import copy
from typing import TypeVar

from pydantic import BaseModel

T = TypeVar("T")
_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


def deep_copy(value: T) -> T:
    """`value` copied as `copy.deepcopy` would, sharing only what cannot change."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is tuple:
        if all(type(v) in _ATOMS for v in value):  # type: ignore[attr-defined]
            return value
        return tuple(deep_copy(v) for v in value)  # type: ignore[attr-defined,return-value]
    if kind is list:
        return [v if type(v) in _ATOMS else deep_copy(v) for v in value]  # type: ignore[attr-defined,return-value]
    if kind is dict:
        return {k: v if type(v) in _ATOMS else deep_copy(v) for k, v in value.items()}  # type: ignore[attr-defined,return-value]
    if isinstance(value, BaseModel) and not value.__pydantic_private__ and not value.__pydantic_extra__:
        # What model_copy(deep=True) does (a new instance, the same fields set), field by field.
        new = value.model_copy()
        for name, field in value.__dict__.items():
            new.__dict__[name] = field if type(field) in _ATOMS else deep_copy(field)
        return new
    return copy.deepcopy(value)
