"""``cocattn reproduce``, end to end: the checks made before any work (:mod:`.preflight`), the
cost plan (:mod:`.plan`), one worker process per attention kind (:mod:`.workers`) with live
progress lines (:mod:`.progress`), and the stages themselves (:mod:`.reproduce`)."""
