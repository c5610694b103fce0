"""The long-context tasks, each defined once: the passkey's wording (:mod:`.passkey`), the
RULER-style retrieval tasks and their scoring (:mod:`.ruler`), the depth buckets every record is
broken down by (:mod:`.depth`), retrieval warm-up rows mixed into training (:mod:`.warmup`), and
the synthetic tasks of the retrieval lab (:mod:`.synthetic`). Evaluating a model on them is
:mod:`cocattn.evaluate`."""
