"""A small least-recently-used cache for values built once and reused by every call after it
(RoPE frequencies and tables, FlexAttention block masks)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

import torch

T = TypeVar("T")


class LRU(Generic[T]):
    """At most ``size`` entries; the least recently used one goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T], stale: Callable[[T], bool] | None = None) -> T:
        """The entry for ``key``, built by ``make()`` when missing (or ``stale``). Built outside
        inference mode and autograd: a tensor cached under ``torch.inference_mode`` must still
        serve a later training step, and none may belong to a graph."""
        hit = self._items.get(key)
        if hit is None or (stale is not None and stale(hit)):
            with torch.inference_mode(False), torch.no_grad():
                hit = make()
            self._items[key] = hit
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return hit

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
