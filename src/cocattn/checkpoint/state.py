"""A trainer's nested state (optimizer, sampler, counters, RNG) as a JSON skeleton plus flat
safetensors tensors (:func:`flatten_state`, :func:`unflatten_state`), and the global RNG states."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def flatten_state(
    obj: Any, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "t"
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts, lists, tuples, scalars, tensors, numpy arrays) into a JSON-able
    skeleton and a flat ``{name: tensor}`` dict for safetensors; :func:`unflatten_state` inverts it.
    Dict keys keep their type (int parameter ids stay ints)."""
    tensors = {} if tensors is None else tensors

    def go(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            if hasattr(value, "full_tensor"):
                value = value.full_tensor()
            name = f"{prefix}{len(tensors)}"
            tensors[name] = value.detach().to("cpu").contiguous().clone()
            return {"__tensor__": name}
        if isinstance(value, np.ndarray):
            name = f"{prefix}{len(tensors)}"
            tensors[name] = torch.from_numpy(
                value.astype(np.int64) if value.dtype.kind in "iu" else value.astype(np.float64)
            ).contiguous()
            return {"__ndarray__": name, "dtype": value.dtype.str}
        if isinstance(value, dict):
            return {"__dict__": [[go(k, path), go(v, f"{path}.{k}")] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"__tuple__": [go(v, path) for v in value]}
        if isinstance(value, list):
            return [go(v, path) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            if isinstance(value, float) and not np.isfinite(value):
                return {"__float__": repr(value)}
            return value
        raise TypeError(f"cannot store {type(value).__name__} at {path} in a checkpoint")

    return go(obj, "state"), tensors


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__ndarray__" in skeleton:
            return tensors[skeleton["__ndarray__"]].numpy().astype(np.dtype(skeleton["dtype"]))
        if "__dict__" in skeleton:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__tuple__" in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
        if "__float__" in skeleton:
            return float(skeleton["__float__"])
        raise ValueError(f"unrecognised checkpoint entry {sorted(skeleton)}")
    return skeleton


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (CPU and CUDA)."""
    import random

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])
