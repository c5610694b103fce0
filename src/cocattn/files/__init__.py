"""Crash-safe files and code-free loading: atomic writes and the project's JSON
(:mod:`~cocattn.files.writes`), output directories, markers and locks
(:mod:`~cocattn.files.directories`), and safetensors / JSON reading that never unpickles
(:mod:`~cocattn.files.loading`)."""

from __future__ import annotations

from cocattn.errors import AtomicWriteError, DirectoryBusyError, OutputNotWritableError, UnsafeFileError
from cocattn.files.directories import (
    LOCK_FILE,
    OUTPUT_MARKER,
    DirectoryLock,
    atomic_directory,
    check_replaceable,
    check_writable,
    clean_temporaries,
    mark_output,
)
from cocattn.files.loading import (
    PICKLE_SUFFIXES,
    is_pickle_bytes,
    load_json,
    load_safetensors,
    refuse_pickles,
    safetensors_metadata,
    sha256_file,
)
from cocattn.files.writes import (
    PathLike,
    append_jsonl,
    atomic_write,
    dumps_json,
    fsync_directory,
    read_jsonl,
    write_bytes,
    write_json,
    write_jsonl,
    write_safetensors,
    write_text,
)

__all__ = [
    "AtomicWriteError",
    "DirectoryBusyError",
    "OutputNotWritableError",
    "UnsafeFileError",
    "LOCK_FILE",
    "OUTPUT_MARKER",
    "PICKLE_SUFFIXES",
    "DirectoryLock",
    "PathLike",
    "append_jsonl",
    "atomic_directory",
    "atomic_write",
    "check_replaceable",
    "check_writable",
    "clean_temporaries",
    "dumps_json",
    "fsync_directory",
    "is_pickle_bytes",
    "load_json",
    "load_safetensors",
    "mark_output",
    "read_jsonl",
    "refuse_pickles",
    "safetensors_metadata",
    "sha256_file",
    "write_bytes",
    "write_json",
    "write_jsonl",
    "write_safetensors",
    "write_text",
]
