"""Benchmarks (``cocattn bench attention|train``): attention speed, memory and ops per kind and
length (:mod:`.attention`), training throughput (:mod:`.train`), the measurements they share
(:mod:`.measure`), their table and JSON (:mod:`.results`), and a GPT shape's FLOP (:mod:`.flops`)."""
