"""atheris harness: the run-config parser (issue 7).

Each input is split by its first byte into one of three modes:

- 0: the rest is a config file (``run.yaml``) passed to ``load_config(path)``;
- 1: the same as ``run.json`` (JSON parser);
- 2: the rest, split on newlines, is a list of ``key=value`` overrides applied to the ``tiny-cpu``
  preset.

The only acceptable outcomes are a valid ``RunConfig`` (validated again, and round-tripped
through its own JSON) or ``ValueError`` / ``FileNotFoundError``. Anything else is a crash.

    .venv/bin/python fuzz/fuzz_config.py -max_total_time=60 -rss_limit_mb=4096 -artifact_prefix=/tmp/ /tmp/corpus-config fuzz/corpus/config
"""

import json
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["cocattn", "yaml"]):
    import yaml  # noqa: F401  (instrumented: the YAML parser is pure Python here)

    from cocattn.config import RunConfig, load_config, preset_path, read_config_file

_DIR = tempfile.mkdtemp(prefix="cocattn-fuzz-config-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PRESET = read_config_file(preset_path("tiny-cpu"))


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    try:
        if mode == 2:
            overrides = rest.decode("utf-8", errors="replace").split("\n")[:8]
            run = load_config(dict(_PRESET), overrides)
        else:
            path = os.path.join(_DIR, "run.json" if mode == 1 else "run.yaml")
            with open(path, "wb") as handle:
                handle.write(rest)
            run = load_config(path)
    except (ValueError, FileNotFoundError):
        return
    run.validate()
    RunConfig.from_dict(json.loads(json.dumps(run.to_dict())))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
