"""One small interface that every evaluator uses, for cocattn checkpoints and Hugging Face models.

``LanguageModel`` is what perplexity, passkey, sweeps and the analyses need from a model:

- ``encode(text) -> list[int]`` (no special tokens) and ``decode(ids) -> str``;
- ``begin_ids``: tokens a sequence starts with (LLaMA-style BOS), ``[]`` for cocattn models;
- ``logits(ids [1, T]) -> [1, T, V]`` (float32, no grad), the full sequence at once;
- ``generate_greedy(ids, max_new_tokens)``: greedy decoding with a KV cache;
- ``rope_scaling(params)``: a context manager applying inference-time RoPE scaling;
- ``training_length`` (L0), ``name``, ``kind`` (``"cocattn"`` or ``"hf"``), ``attention``.

Dynamic NTK and the KV cache. cocattn's cache keeps un-rotated keys and rotates them with the base
for the current length, so cached generation is exact under dynamic scaling. transformers caches
*rotated* keys: under a length-dependent scaling (``dynamic``, ``longrope``) the old keys keep a
stale base. :class:`HFLanguageModel` therefore decodes such scalings without a cache (each step
recomputes the whole sequence: exact, slower) and says so in ``generation_mode``.

transformers' dynamic RoPE module is also stateful (it only regrows its base, and resets only when
a sequence is shorter than L0); ``logits`` resets it before every call so that a window's result
never depends on the windows scored before it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F

from cocattn._checks import bad_value, check
from cocattn.attention.kinds import coca_kind, is_rope_free
from cocattn._moved import moved
from cocattn.checkpoint import model_dir_kind as _model_dir_kind

__all__ = ["LanguageModel", "CocattnLanguageModel", "HFLanguageModel", "load_lm"]
__getattr__ = moved(__name__, {"model_dir_kind": "cocattn.checkpoint.model_dir_kind"})

_LENGTH_DEPENDENT = ("dynamic", "longrope")


class LanguageModel:
    """The interface the evaluators use (see the module docstring). Subclasses fill it in."""

    name: str = "model"
    kind: str = "?"
    attention: str = "rope"
    training_length: int = 0
    training_mix: dict[str, Any] | None = None
    """The retrieval warm-up the model was trained with (``data.retrieval_fraction`` and
    ``data.retrieval_tasks``), when its directory records it; every result record repeats it."""

    # --- text ---------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``."""
        raise NotImplementedError

    @property
    def begin_ids(self) -> list[int]:
        """Tokens every sequence starts with (BOS for LLaMA-style tokenizers)."""
        return []

    @property
    def eos_id(self) -> int | None:
        return None

    # --- model --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    module: torch.nn.Module

    def logits(self, ids: torch.Tensor, start: int | None = None) -> torch.Tensor:
        """``[B, T] -> [B, T, V]`` float32 logits of the whole sequence (no cache, no grad);
        with ``start``, only those of positions ``start:`` (what scoring a continuation needs)."""
        raise NotImplementedError

    def generate_greedy_batch(
        self, rows: Sequence[Sequence[int]], max_new_tokens: int, *, stop_at_eos: bool = True
    ) -> list[list[int]]:
        """Greedy continuations of prompts of one length: what :meth:`generate_greedy` gives for
        each row (up to floating-point ties), batched where the model can (one decoding step
        for all rows instead of one per row)."""
        check(len({len(r) for r in rows}) <= 1, "rows", sorted({len(r) for r in rows}), "prompts of one length")
        return [self.generate_greedy(list(r), max_new_tokens, stop_at_eos=stop_at_eos) for r in rows]

    def generate_greedy(
        self, ids: list[int] | torch.Tensor, max_new_tokens: int, *, use_cache: bool = True, stop_at_eos: bool = True
    ) -> list[int]:
        """Greedy continuation of ``ids`` (new tokens only)."""
        tokens, _ = self.generate_greedy_with_logits(ids, max_new_tokens, use_cache=use_cache, stop_at_eos=stop_at_eos)
        return tokens

    def generate_greedy_with_logits(
        self, ids, max_new_tokens: int, *, use_cache: bool = True, stop_at_eos: bool = True
    ) -> tuple[list[int], list[torch.Tensor]]:
        """Greedy continuation and the float32 next-token logits ``[V]`` of every step."""
        check(
            isinstance(max_new_tokens, int) and max_new_tokens >= 0, "max_new_tokens", max_new_tokens, "an integer >= 0"
        )
        idx = _as_batch(ids, self.device)
        if not use_cache or not self.cache_is_exact():
            return self._generate_no_cache(idx, max_new_tokens, stop_at_eos)
        return self._generate_cached(idx, max_new_tokens, stop_at_eos)

    @torch.no_grad()
    def _generate_no_cache(self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool):
        out: list[int] = []
        steps: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            last = self.logits(idx, start=-1)[0, -1]
            token = int(last.argmax())
            out.append(token)
            steps.append(last)
            if stop_at_eos and token == self.eos_id:
                break
            idx = torch.cat([idx, idx.new_tensor([[token]])], dim=1)
        return out, steps

    def _generate_cached(self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool):
        raise NotImplementedError

    # --- RoPE scaling -------------------------------------------------------------------------
    scaling: dict[str, Any] | None = None

    def cache_is_exact(self) -> bool:
        """Whether cached decoding equals recomputation under the current scaling."""
        return True

    @property
    def generation_mode(self) -> str:
        return "kv-cache" if self.cache_is_exact() else "no-cache recomputation (cached keys would be stale)"

    @contextlib.contextmanager
    def rope_scaling(self, params: Mapping[str, Any] | None) -> Iterator["LanguageModel"]:
        """Apply inference-time RoPE scaling (``None``: as trained) inside the ``with`` block."""
        previous = self.scaling
        self._apply_scaling(dict(params) if params else None)
        try:
            yield self
        finally:
            self._apply_scaling(previous)

    def _apply_scaling(self, params: dict[str, Any] | None) -> None:
        raise NotImplementedError

    # --- internals, for the analyses ----------------------------------------------------------
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities ``[B, H, T, T]`` of every layer (eager path)."""
        raise NotImplementedError

    def query_key_states(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the un-rotated query ``[B, H, T, d]`` and key ``[B, Hkv, T, d]`` (RoPE models)."""
        raise NotImplementedError

    # --- sizes, for memory estimates ----------------------------------------------------------
    def dims(self) -> dict[str, int]:
        """``params``, ``vocab``, ``hidden``, ``layers``, ``heads``, ``ffn`` (for memory estimates)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a result file records about the model."""
        out = {
            "model": self.name,
            "kind": self.kind,
            "attention": self.attention,
            "training_length": self.training_length,
        }
        if self.training_mix is not None:
            out["training_mix"] = self.training_mix
        return out


def _as_batch(ids: list[int] | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        idx = ids if ids.dim() == 2 else ids.view(1, -1)
    else:
        idx = torch.tensor([list(ids)], dtype=torch.long)
    check(idx.shape[0] == 1 and idx.shape[1] > 0, "ids", tuple(idx.shape), "one non-empty sequence ([1, T])")
    return idx.to(device=device, dtype=torch.long)


# ------------------------------------------------------------------------------------------------
# cocattn checkpoints


class CocattnLanguageModel(LanguageModel):
    """A :class:`cocattn.model.GPT` with its ``tokenizers.Tokenizer``."""

    kind = "cocattn"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str = "cocattn"):
        self.module = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config
        self.attention = str(getattr(self.config, "attention", "rope"))
        self.training_length = int(self.config.max_seq_len)
        self.base_rope = dict(getattr(self.config, "rope_parameters", None) or {"rope_type": "default"})
        self.scaling = None
        self.autocast: torch.dtype | None = None  # e.g. torch.bfloat16: forward passes under autocast

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def eos_id(self) -> int | None:
        for name in ("<|endoftext|>", "</s>", "<eos>"):
            token = self.tokenizer.token_to_id(name)
            if token is not None:
                return int(token)
        return None

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, start: int | None = None) -> torch.Tensor:
        with self._autocast():
            logits, _ = self.module(ids.to(self.device), logits_from=start)
        return logits.float()

    def generate_greedy_batch(
        self, rows: Sequence[Sequence[int]], max_new_tokens: int, *, stop_at_eos: bool = True
    ) -> list[list[int]]:
        if len(rows) <= 1 or not self.cache_is_exact():
            return super().generate_greedy_batch(rows, max_new_tokens, stop_at_eos=stop_at_eos)
        check(len({len(r) for r in rows}) == 1, "rows", sorted({len(r) for r in rows}), "prompts of one length")
        check(
            isinstance(max_new_tokens, int) and max_new_tokens >= 0, "max_new_tokens", max_new_tokens, "an integer >= 0"
        )
        idx = torch.tensor([list(r) for r in rows], dtype=torch.long, device=self.device)
        return self._decode(idx, max_new_tokens, stop_at_eos)[0]

    def _generate_cached(self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool):
        out, steps = self._decode(idx, max_new_tokens, stop_at_eos)
        return out[0], [last[0] for last in steps]

    @torch.no_grad()
    def _decode(self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool):
        """Greedy decoding of the rows of ``idx [B, T]`` on one KV cache: each row's new tokens (up
        to its end-of-text), and the float32 next-token logits ``[B, V]`` of every step."""
        cache = self.module.new_cache(idx.shape[0])
        out: list[list[int]] = [[] for _ in range(idx.shape[0])]
        done = [False] * idx.shape[0]
        steps: list[torch.Tensor] = []
        step_in = idx
        for _ in range(max_new_tokens):
            with self._autocast():
                logits, _ = self.module(step_in, cache=cache, logits_from=-1)
            last = logits[:, -1].float()
            steps.append(last)
            tokens = last.argmax(-1)
            for row, token in enumerate(tokens.tolist()):
                if not done[row]:
                    out[row].append(token)
                    done[row] = stop_at_eos and token == self.eos_id
            if all(done):
                break
            step_in = tokens[:, None]
        return out, steps

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        return [p.float() for p in self.module.attention_maps(ids.to(self.device))]

    @torch.no_grad()
    def query_key_states(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        check(self.attention == "rope", "model", self.name, "a RoPE model (attention 'rope') for query/key angles")
        states: list[tuple[torch.Tensor, torch.Tensor]] = []

        def grab(module, args, kwargs):
            q, k, _ = module.project(args[0] if args else kwargs["x"])
            states.append((q.float(), k.float()))

        handles = [b.attn.register_forward_pre_hook(grab, with_kwargs=True) for b in self.module.blocks]
        try:
            self.module(ids.to(self.device))
        finally:
            for h in handles:
                h.remove()
        return states

    def _apply_scaling(self, params: dict[str, Any] | None) -> None:
        if is_rope_free(self.attention) and params:
            raise bad_value("rope", params, f"no RoPE scaling: a {self.attention!r} model has no rotary embedding")
        if not is_rope_free(self.attention):
            merged = {"rope_theta": self.base_rope.get("rope_theta", 10000.0), **params} if params else None
            self.module.set_rope_parameters(merged)  # None: the trained parameters
        self.scaling = params

    def dims(self) -> dict[str, int]:
        c = self.config
        return {
            "params": sum(p.numel() for p in self.module.parameters()),
            "vocab": int(c.vocab_size),
            "hidden": int(c.n_embd),
            "layers": int(c.n_layer),
            "heads": int(c.n_head),
            "ffn": int(c.n_embd * getattr(c, "mlp_ratio", 4.0)),
            "bytes_per_value": next(self.module.parameters()).element_size(),
        }


# ------------------------------------------------------------------------------------------------
# Hugging Face causal LMs


class HFLanguageModel(LanguageModel):
    """A transformers causal LM (LLaMA-style rotary embedding at ``model.model.rotary_emb``)."""

    kind = "hf"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str = "hf", training_length: int | None = None):
        self.module = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config
        self.base_rope = dict(
            getattr(self.config, "rope_parameters", None) or {"rope_type": "default", "rope_theta": 10000.0}
        )
        if getattr(self.config, "model_type", None) == "coca_llama":
            self.attention = coca_kind(getattr(self.config, "coca_variant", "slack"))
        else:
            self.attention = "rope" if self._rotary() is not None else str(getattr(self.config, "model_type", "hf"))
        l0 = (
            training_length
            or self.base_rope.get("original_max_position_embeddings")
            or self.config.max_position_embeddings
        )
        self.training_length = int(l0)
        self.scaling = None

    def _rotary(self) -> torch.nn.Module | None:
        inner = getattr(self.module, "model", self.module)
        return getattr(inner, "rotary_emb", None)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def begin_ids(self) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is None:
            return []
        adds = self.tokenizer.encode("a", add_special_tokens=True)  # does the tokenizer prepend BOS?
        return [int(bos)] if adds and adds[0] == bos else []

    @property
    def eos_id(self) -> int | None:
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return None if eos is None else int(eos)

    def _reset_rotary(self) -> None:
        rotary = self._rotary()
        if rotary is not None and hasattr(rotary, "original_inv_freq") and hasattr(rotary, "max_seq_len_cached"):
            rotary.inv_freq = rotary.original_inv_freq.clone()
            rotary.max_seq_len_cached = rotary.original_max_seq_len

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, start: int | None = None) -> torch.Tensor:
        self._reset_rotary()
        out = self.module(input_ids=ids.to(self.device), use_cache=False)
        return (out.logits if start is None else out.logits[:, start:]).float()

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        self._reset_rotary()
        if hasattr(self.module, "set_attn_implementation"):
            self.module.set_attn_implementation("eager")  # only eager returns probabilities
        out = self.module(input_ids=ids.to(self.device), use_cache=False, output_attentions=True)
        return [a.float() for a in out.attentions]

    @torch.no_grad()
    def query_key_states(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        check(self.attention == "rope", "model", self.name, "a model with a rotary embedding")
        c = self.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        layers = getattr(self.module, "model", self.module).layers
        states: list[list[torch.Tensor]] = [[] for _ in layers]

        def grab(i: int):
            def hook(module, args, output):
                b, t, _ = output.shape
                states[i].append(output.float().view(b, t, -1, head_dim).transpose(1, 2))

            return hook

        handles = []
        for i, layer in enumerate(layers):
            handles.append(layer.self_attn.q_proj.register_forward_hook(grab(i)))
            handles.append(layer.self_attn.k_proj.register_forward_hook(grab(i)))
        try:
            self.logits(ids)
        finally:
            for h in handles:
                h.remove()
        return [(q, k) for q, k in states]

    def cache_is_exact(self) -> bool:
        return not (self.scaling and self.scaling.get("rope_type") in _LENGTH_DEPENDENT)

    @torch.no_grad()
    def _generate_cached(self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool):
        self._reset_rotary()
        out: list[int] = []
        steps: list[torch.Tensor] = []
        past = None
        step_in = idx
        for _ in range(max_new_tokens):
            result = self.module(input_ids=step_in, cache=past, use_cache=True)
            past = result.cache
            last = result.logits[0, -1].float()
            token = int(last.argmax())
            out.append(token)
            steps.append(last)
            if stop_at_eos and token == self.eos_id:
                break
            step_in = idx.new_tensor([[token]])
        return out, steps

    def _apply_scaling(self, params: dict[str, Any] | None) -> None:
        rotary = self._rotary()
        if rotary is None:
            if params:
                raise bad_value("rope", params, "no RoPE scaling: this model has no rotary embedding")
            return
        merged = dict(self.base_rope)
        if params:
            merged = {"rope_theta": self.base_rope.get("rope_theta", 10000.0), **params}
            if merged["rope_type"] == "ntk":  # static NTK-aware: a base change transformers has no name for
                dim = (
                    getattr(self.config, "head_dim", None) or self.config.hidden_size // self.config.num_attention_heads
                )
                merged = {
                    "rope_type": "default",
                    "rope_theta": merged["rope_theta"] * merged["factor"] ** (dim / (dim - 2)),
                }
            elif merged["rope_type"] != "linear":
                merged.setdefault("original_max_position_embeddings", self.training_length)
        self.config.rope_parameters = merged
        device = next(rotary.buffers()).device
        new = type(rotary)(config=self.config).to(device)
        inner = getattr(self.module, "model", self.module)
        inner.rotary_emb = new
        self.scaling = params

    def dims(self) -> dict[str, int]:
        c = self.config
        return {
            "params": sum(p.numel() for p in self.module.parameters()),
            "vocab": int(c.vocab_size),
            "hidden": int(c.hidden_size),
            "layers": int(c.num_hidden_layers),
            "heads": int(c.num_attention_heads),
            "ffn": int(getattr(c, "intermediate_size", 4 * c.hidden_size)),
            "bytes_per_value": next(self.module.parameters()).element_size(),
        }


# ------------------------------------------------------------------------------------------------
# loading


def training_mix(path: str | Path) -> dict[str, Any] | None:
    """What ``cocattn train`` mixed into a model's training (``retrieval_fraction``,
    ``retrieval_tasks``), read from its directory (``config.json``'s ``run``, or
    ``cocattn_train.json`` beside a Hugging Face model); None when it was not trained by cocattn."""
    path = Path(path)
    for name in ("config.json", "cocattn_train.json"):
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        run = data.get("run") if isinstance(data, dict) else None
        section = run.get("data") if isinstance(run, dict) else None
        if isinstance(section, dict) and "retrieval_fraction" in section:
            fraction = section.get("retrieval_fraction") or 0.0
            tasks = section.get("retrieval_tasks") or ["passkey"]
            return {"retrieval_fraction": fraction, "retrieval_tasks": list(tasks) if fraction else []}
    return None


def load_lm(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    training_length: int | None = None,
    name: str | None = None,
    autocast: torch.dtype | None = None,
) -> LanguageModel:
    """Load a cocattn checkpoint or a Hugging Face model directory as a :class:`LanguageModel`.

    ``dtype`` converts the weights; ``autocast`` (cocattn checkpoints) keeps them and runs every
    forward pass under ``torch.autocast`` in that dtype, as training did on a GPU."""
    path = Path(path)
    kind = _model_dir_kind(path)
    label = name or path.name
    if kind == "cocattn":
        from cocattn.checkpoint import load_model

        model, tokenizer = load_model(path, map_location=device)
        if tokenizer is None:
            raise bad_value("checkpoint", str(path), "a cocattn checkpoint with tokenizer.json")
        if dtype is not None:
            model = model.to(dtype)
        lm: LanguageModel = CocattnLanguageModel(model.to(device), tokenizer, name=label)
        lm.autocast = autocast
        if training_length:
            lm.training_length = int(training_length)
        lm.training_mix = training_mix(path)
        return lm
    if autocast is not None:
        raise bad_value("autocast", autocast, "None for a Hugging Face model (pass dtype= to convert its weights)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    from cocattn.io import refuse_pickles, refuse_remote_code

    refuse_pickles(path)
    refuse_remote_code(path)
    import cocattn.hf  # noqa: F401  registers the coca_llama model type with the Auto classes

    from cocattn.hf.load import from_pretrained_checked

    model = from_pretrained_checked(
        AutoModelForCausalLM,
        path,
        name="checkpoint",
        dtype=dtype or torch.float32,
        expected="a loadable Hugging Face causal-LM directory with safetensors weights",
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError):
        if not (path / "tokenizer.json").is_file():
            raise bad_value("checkpoint", str(path), "a Hugging Face model directory with a tokenizer") from None
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    lm = HFLanguageModel(model.to(device), tokenizer, name=label, training_length=training_length)
    lm.training_mix = training_mix(path)
    return lm


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood (float32) of ``targets [T]`` under ``logits [T, V]``."""
    return F.cross_entropy(logits.float(), targets.to(logits.device), reduction="none")
