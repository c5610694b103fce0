"""Crash-safe writes and code-free loading: each test names the guarantee it checks."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import signal
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import torch

from cocattn import files


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")]


def test_atomic_write_publishes_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    files.write_json(target, {"b": 1, "a": [1, 2]})
    assert files.load_json(target) == {"a": [1, 2], "b": 1}
    files.write_json(target, {"c": 3})
    assert files.load_json(target) == {"c": 3}
    assert _leftovers(tmp_path) == []


def test_error_during_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old content")
    with pytest.raises(RuntimeError, match="boom"):
        with files.atomic_write(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


def test_disk_full_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    files.write_json(target, {"version": 1})

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(files.AtomicWriteError) as info:
        files.write_json(target, {"version": 2})
    assert str(target) in str(info.value) and "disk full" in str(info.value)
    monkeypatch.undo()
    assert files.load_json(target) == {"version": 1}
    assert _leftovers(tmp_path) == []


def test_read_only_directory_is_a_clear_error(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    if os.geteuid() != 0:  # a real read-only directory (root ignores the mode bits)
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(files.AtomicWriteError, match="report.md"):
                files.write_text(target, "x")
        finally:
            tmp_path.chmod(0o755)
    else:

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(files.AtomicWriteError) as info:
            files.write_text(target, "x")
        assert "report.md" in str(info.value) and "read-only" in str(info.value)
    assert not target.exists()


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with files.atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    assert (target / "a.txt").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with files.atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("v2")
            raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "v1"
    with files.atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("v3")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert _leftovers(tmp_path) == []


def _write_forever(path: Path) -> None:
    i = 0
    while True:
        i = (i + 1) % 250
        files.write_bytes(path, bytes([i]) * 2_000_000)


def test_sigkill_at_random_moments_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "blob"
    target.write_bytes(bytes([0]) * 2_000_000)
    seen = set()
    for delay in (0.03, 0.07, 0.11, 0.17, 0.23, 0.31):
        pid = os.fork()
        if pid == 0:  # child: rewrite the file until killed
            try:
                _write_forever(target)
            finally:
                os._exit(1)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        data = target.read_bytes()
        assert len(data) == 2_000_000 and data.count(data[:1]) == len(data), "partial file after SIGKILL"
        seen.add(data[0])
        files.clean_temporaries(tmp_path)
    assert len(seen) > 1, "the writer never replaced the file: the kills tested nothing"
    assert _leftovers(tmp_path) == []


def test_sha256_matches_hashlib(tmp_path):
    blob = os.urandom(3_000_000)
    (tmp_path / "f").write_bytes(blob)
    assert files.sha256_file(tmp_path / "f", chunk=1 << 16) == hashlib.sha256(blob).hexdigest()


def test_jsonl_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    files.append_jsonl(path, {"step": 1})
    files.append_jsonl(path, {"step": 2})
    with open(path, "a") as handle:
        handle.write('{"step": 3, "lo')  # killed mid-append
    assert [r["step"] for r in files.read_jsonl(path)] == [1, 2]


def test_safetensors_round_trip_and_corruption_named(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.tensor(3, dtype=torch.int64)}
    path = tmp_path / "t.safetensors"
    files.write_safetensors(path, tensors, metadata={"k": "v"})
    loaded = files.load_safetensors(path)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert files.safetensors_metadata(path) == {"k": "v"}
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    with pytest.raises(ValueError, match="t.safetensors"):
        files.load_safetensors(path)


# -- pickles are refused and never run ---------------------------------------------------------


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def _pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker), protocol=4)


@pytest.mark.parametrize("name", ["model.bin", "optimizer.pt", "state.pkl", "weights"])
def test_crafted_pickle_in_a_checkpoint_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / name).write_bytes(_pickle_payload(marker))
    with pytest.raises(files.UnsafeFileError, match=name):
        files.refuse_pickles(ckpt)
    assert not marker.exists()


def test_zip_pickle_under_an_innocent_name_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with zipfile.ZipFile(ckpt / "extra_state", "w") as archive:  # torch.save's container format
        archive.writestr("archive/data.pkl", _pickle_payload(marker))
    with pytest.raises(files.UnsafeFileError, match="extra_state"):
        files.refuse_pickles(ckpt)
    assert not marker.exists()


def test_pickle_disguised_as_safetensors_or_json_is_rejected_without_running(tmp_path):
    marker = tmp_path / "MARKER"
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(_pickle_payload(marker))
    with pytest.raises(ValueError, match="model.safetensors"):
        files.load_safetensors(fake)
    fake_json = tmp_path / "config.json"
    fake_json.write_bytes(_pickle_payload(marker))
    with pytest.raises(ValueError, match="config.json"):
        files.load_json(fake_json)
    assert not marker.exists()


def test_payload_really_would_run_when_unpickled(tmp_path):
    """Guards the tests above: the payload is live, so 'marker absent' means it was not loaded."""
    marker = tmp_path / "MARKER"
    pickle.loads(_pickle_payload(marker))  # noqa: S301 - deliberate, on our own bytes
    assert marker.read_text() == "pwned"
