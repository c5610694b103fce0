"""Benchmarks (``cocattn bench attention|train``): attention speed and memory per kind and
length (:mod:`.attention`), and the operation counts of a GPT shape (:mod:`.flops`)."""
