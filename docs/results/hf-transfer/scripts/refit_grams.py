# Per layer: normal equations of the o_proj read-out (gram = Σ a aᵀ, cross = Σ y aᵀ) on the transfer
# set, with the gain-fitted model's heads, saved; then models with W = (cross + λ W0)(gram + λ I)^-1.
import sys, time, json, shutil
from pathlib import Path
import torch
import cocattn.hf  # noqa
from transformers import AutoModelForCausalLM, AutoTokenizer
from cocattn.hf.convert import load_llama
from cocattn.hf.transfer import TransferSettings, transfer_tokens, _Stack

src, coca_dir, data, out = sys.argv[1:5]
t0 = time.time()
source = load_llama(src, dtype=torch.float32)
coca = AutoModelForCausalLM.from_pretrained(coca_dir, dtype=torch.float32).eval()
for p in list(source.parameters()) + list(coca.parameters()):
    p.requires_grad_(False)
tok = AutoTokenizer.from_pretrained(src)
ids = transfer_tokens(data, tok, TransferSettings())
stack = _Stack(source, coca, ids, chunk=1)
grams = {}
for layer in range(coca.config.num_hidden_layers):
    x, y = stack.teacher()
    attn = coca.model.layers[layer].self_attn
    cap = []
    h = attn.o_proj.register_forward_hook(lambda _m, a, _o: cap.append(a[0].detach()))
    width = attn.o_proj.in_features
    g = torch.zeros(width, width, dtype=torch.float64); c = torch.zeros(y.shape[-1], width, dtype=torch.float64)
    yy = 0.0
    with torch.no_grad():
        for i in range(x.shape[0]):
            cap.clear(); stack.student(attn, {}, x[i:i+1])
            a = cap[0].reshape(-1, width).double(); t = y[i:i+1].reshape(-1, y.shape[-1]).double()
            g += a.T @ a; c += t.T @ a; yy += float((t*t).sum())
    h.remove()
    grams[layer] = {"gram": g, "cross": c, "yy": yy, "w0": attn.o_proj.weight.double().clone()}
    print(f"layer {layer} ({time.time()-t0:.0f} s)", flush=True)
    del x, y
    stack.advance()
torch.save(grams, out)
