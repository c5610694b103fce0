"""KV cache that stays exact under any RoPE scaling.

Keys are cached **un-rotated** and rotated at use, so when the base changes as the sequence grows
(dynamic NTK) every cached key is rotated with the base for the current length, exactly as a
full forward pass would. For CoCA the key-side state is only the tied ``τ`` (``head_dim / 2``
numbers per token): half the size of a vanilla key cache. The released CoCA code and
transformers' RoPE models cache rotated keys, which makes dynamic NTK stale during generation.
"""

from __future__ import annotations

import torch

__all__ = ["LayerCache", "KVCache"]


class LayerCache:
    """Growing ``[B, Hkv, S, *]`` key-state and value buffers for one layer (capacity doubles)."""

    def __init__(self) -> None:
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self.length = 0

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``[B, Hkv, T, *]`` new entries; return views of everything cached so far."""
        new = keys.shape[2]
        need = self.length + new
        k_buf, v_buf = self._keys, self._values
        if k_buf is None or v_buf is None or need > k_buf.shape[2] or k_buf.dtype != keys.dtype:
            cap = max(need, 2 * (k_buf.shape[2] if k_buf is not None else 0), 16)
            grown_k = keys.new_empty(*keys.shape[:2], cap, keys.shape[3])
            grown_v = values.new_empty(*values.shape[:2], cap, values.shape[3])
            if k_buf is not None and v_buf is not None and self.length:
                grown_k[:, :, : self.length] = k_buf[:, :, : self.length]
                grown_v[:, :, : self.length] = v_buf[:, :, : self.length]
            k_buf, v_buf = grown_k, grown_v
            self._keys, self._values = k_buf, v_buf
        k_buf[:, :, self.length : need] = keys
        v_buf[:, :, self.length : need] = values
        self.length = need
        return k_buf[:, :, :need], v_buf[:, :, :need]

    def nbytes(self) -> int:
        """Bytes of the cached entries (not the spare capacity)."""
        if self._keys is None or self._values is None:
            return 0
        per_token = (self._keys[:, :, :1].numel() * self._keys.element_size()) + (
            self._values[:, :, :1].numel() * self._values.element_size()
        )
        return per_token * self.length


class KVCache:
    """One :class:`LayerCache` per layer; ``length`` is the number of tokens already seen."""

    def __init__(self, n_layers: int) -> None:
        self.layers = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def nbytes(self) -> int:
        return sum(layer.nbytes() for layer in self.layers)
