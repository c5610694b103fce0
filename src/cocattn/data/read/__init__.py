"""Reading a built data directory: token shards and manifest (:mod:`.shards`), the tokenizer
(:mod:`.tokenizer`), documents (:mod:`.document`), random training batches (:mod:`.batches`) and
the directory's summary (:mod:`.info`). Never imports :mod:`cocattn.data.build`."""
