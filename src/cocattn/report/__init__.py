"""Reports from result JSON alone: ``report.md`` and its sections (:mod:`.writer`), the verdict
(:mod:`.verdict`), the retrieval-suite tables (:mod:`.retrieval`), the reproduce run's header
(:mod:`.reproduce`), the analysis plots (:mod:`.analysis`) and the shared headless-matplotlib
helpers (:mod:`.plots`)."""
