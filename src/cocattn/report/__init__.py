"""Reports from result JSON alone: ``report.md`` (:mod:`.writer`), its sections (:mod:`.sections`)
and figures (:mod:`.figures`), the verdict (:mod:`.verdict`), the retrieval-suite tables
(:mod:`.retrieval`), the reproduce run's header (:mod:`.reproduce`), the analysis plots
(:mod:`.analysis`), shared text formatting (:mod:`.format`) and matplotlib helpers (:mod:`.plots`)."""
