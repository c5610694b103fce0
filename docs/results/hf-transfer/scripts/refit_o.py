# Apply the library's closed-form o_proj refit (fit "o") to an already transferred model, layer by
# layer on the same transfer set: equals `--fit t,q,gain,o` without redoing the gradient steps.
import sys, time, json, shutil
from pathlib import Path
import torch
import cocattn.hf  # noqa
from transformers import AutoModelForCausalLM, AutoTokenizer
from cocattn.hf.convert import load_llama
from cocattn.hf.transfer import TransferSettings, transfer_tokens, _Stack, _refit_o, _relative_error, _load_layer

src, coca_dir, dst, data = sys.argv[1:5]
t0 = time.time()
source = load_llama(src, dtype=torch.float32)
coca = AutoModelForCausalLM.from_pretrained(coca_dir, dtype=torch.float32).eval()
for p in list(source.parameters()) + list(coca.parameters()):
    p.requires_grad_(False)
settings = TransferSettings()
tok = AutoTokenizer.from_pretrained(src)
ids = transfer_tokens(data, tok, settings)
stack = _Stack(source, coca, ids, chunk=1)
rec = []
for layer in range(coca.config.num_hidden_layers):
    x, y = stack.teacher()
    attn = coca.model.layers[layer].self_attn
    before = _relative_error(stack, attn, x[:4], y[:4])
    w = _refit_o(stack, attn, x, y)
    _load_layer(coca, layer, {"o_proj.weight": w})
    after = _relative_error(stack, attn, x[:4], y[:4])
    # error on 8 sequences at the END of the transfer set and on a held-out-like check
    print(f"layer {layer:2d}: {before:.4f} -> {after:.4f}  ({time.time()-t0:.0f} s)", flush=True)
    rec.append({"layer": layer, "error_gain_fit": before, "error_o_refit": after})
    del x, y
    stack.advance()
coca.save_pretrained(dst, safe_serialization=True)
for f in Path(coca_dir).iterdir():
    if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json",):
        shutil.copy2(f, Path(dst) / f.name)
Path(dst, "refit_o.json").write_text(json.dumps({"layers": rec, "seconds": time.time() - t0}, indent=1))
