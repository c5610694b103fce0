"""Helpers shared by the tests (real small models, texts and data; no downloads). Not collected:
no module here is named test_*."""
