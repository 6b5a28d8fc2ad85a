"""Where dataset files are looked for, how a missing one is downloaded, and the two errors a loader raises.

Search order, for a dataset whose files live in the subfolder ``SUB`` (``mnist``,
``fashion-mnist``, ``cifar-10``, ``imagenet32``, ``imagenet64``):

1. ``DATA_DIR/SUB`` where ``DATA_DIR`` is the ``data_dir`` argument (the CLI's ``--data-dir``);
2. ``$MINIBP_DATA/SUB``;
3. ``~/.cache/minibp/SUB``;
4. read-only system folders from :data:`SYSTEM_DIRS` (Debian's ``dataset-fashion-mnist``
   package puts Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``).

Each required file is taken from the first of these folders that has it. A file found
nowhere is downloaded, where the dataset has a public download, into the first folder
(:func:`data_root`), checked against its recorded SHA-256 sum and only then moved into
place, so an interrupted or corrupted download never leaves a file that looks complete.
When that is impossible (offline, no public download, ``download=False``) the loader
raises :class:`DataNotFound`, whose message lists the files, the folder and the URLs.

Tests replace :func:`urlopen` in this module to serve bytes from memory; nothing here
needs the network otherwise.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import Request, urlopen

import numpy as np

#: environment variable naming the data root when no ``data_dir`` is given
ENV_VAR = "MINIBP_DATA"
#: read-only folders, per dataset subfolder, searched after the writable roots
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
#: seconds to wait for the server before a download counts as failed
TIMEOUT_S = 60.0
_CHUNK = 1 << 20

PathLike = str | os.PathLike[str]


class DataNotFound(FileNotFoundError):
    """A dataset's files are not on disk and could not be downloaded; the message says what to do."""


class CorruptDataFile(ValueError):
    """A dataset file is truncated, malformed or fails its checksum; the message names it."""


def corrupt(path: PathLike, problem: str) -> CorruptDataFile:
    """A :class:`CorruptDataFile` naming ``path`` and ``problem``, with the usual advice."""
    return CorruptDataFile(
        f"{path}: {problem}. The file is damaged or not the expected one: "
        "delete it and download it again (minibp downloads missing files where it can)."
    )


def float_dtype(dtype: str | np.dtype) -> np.dtype:
    """``dtype`` as a NumPy dtype, which must be floating (pixels are scaled to [0, 1])."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating type such as 'float32', got {dt}")
    return dt


@dataclass(frozen=True)
class Source:
    """The files one dataset needs, the subfolder they live in, and where they come from."""

    #: human-readable name used in messages, e.g. "MNIST"
    title: str
    #: subfolder under each data root, e.g. "mnist"
    subdir: str
    #: file names (relative to the subfolder) the loader needs
    files: tuple[str, ...]
    #: URL prefix each file name is appended to; None when there is no public download
    base_url: str | None = None
    #: SHA-256 of each downloadable file
    sha256: Mapping[str, str] = field(default_factory=dict)
    #: how to get the files by hand, for the error message
    instructions: str = ""
    #: whether a ``name.gz`` file may also be present decompressed, as ``name`` (what
    #: ``gunzip`` leaves behind); the loader must read both forms
    gunzipped_ok: bool = False

    def url(self, name: str) -> str | None:
        return None if self.base_url is None else self.base_url + name


def default_root() -> Path:
    """``~/.cache/minibp`` (read from ``$HOME`` at call time)."""
    return Path.home() / ".cache" / "minibp"


def data_root(data_dir: PathLike | None = None) -> Path:
    """The writable data root: ``data_dir``, else ``$MINIBP_DATA``, else ``~/.cache/minibp``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    return default_root()


def search_dirs(subdir: str, data_dir: PathLike | None = None) -> list[Path]:
    """The folders searched for a dataset's files, first match wins (see the module docstring)."""
    roots: list[Path] = []
    if data_dir is not None and str(data_dir) != "":
        roots.append(Path(data_dir).expanduser())
    if os.environ.get(ENV_VAR, ""):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots.append(default_root())
    dirs = [root / subdir for root in roots] + list(SYSTEM_DIRS.get(subdir, ()))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def locate(
    subdir: str, names: Iterable[str], data_dir: PathLike | None = None, *, gunzipped_ok: bool = False
) -> dict[str, Path | None]:
    """For each file name, the path in the first search folder that has it, or None if none has it.

    With ``gunzipped_ok``, a folder that holds ``x`` instead of ``x.gz`` has it too (the ``.gz``
    file is preferred where a folder holds both).
    """
    dirs = search_dirs(subdir, data_dir)
    found: dict[str, Path | None] = {}
    for name in names:
        forms = [name]
        if gunzipped_ok and name.endswith(".gz"):
            forms.append(name[: -len(".gz")])
        found[name] = next((d / form for d in dirs for form in forms if (d / form).is_file()), None)
    return found


def sha256_of(path: PathLike) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: PathLike, sha256: str | None, *, desc: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` atomically: into a temporary file beside it, verified, then renamed.

    Raises :class:`CorruptDataFile` (after deleting the download) if the SHA-256 sum differs
    from ``sha256``, and lets network errors (``OSError``, ``http.client.HTTPException``)
    through, leaving no partial file behind in either case.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415 (keeps import minibp light)

    dest = Path(dest)
    request = Request(url, headers={"User-Agent": "minibp"})
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
            total = int(length) if length and str(length).isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or dest.name) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise CorruptDataFile(
                f"download of {url} has SHA-256 {got}, expected {sha256}: "
                f"it was deleted, nothing was written to {dest}. Try again later, "
                f"or fetch the file by hand and put it at {dest}."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _missing_message(source: Source, missing: list[str], data_dir: PathLike | None, reason: str) -> str:
    folder = data_root(data_dir) / source.subdir
    lines = [
        f"{source.title}: {len(missing)} file(s) not found: {', '.join(missing)}.",
        f"Put them in {folder}/ (choose another data folder with --data-dir DIR or the "
        f"environment variable {ENV_VAR}=DIR; the files then go in DIR/{source.subdir}/).",
    ]
    if source.base_url is not None:
        lines.append("Get them from:")
        lines += [f"  {source.url(name)}" for name in missing]
    if source.instructions:
        lines.append(source.instructions)
    lines.append("Looked in: " + ", ".join(str(d) for d in search_dirs(source.subdir, data_dir)) + ".")
    lines.append(reason)
    return "\n".join(lines)


def require(
    source: Source,
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    names: Iterable[str] | None = None,
) -> dict[str, Path]:
    """The path of each of ``source``'s files (or just ``names``), downloading the missing ones.

    Raises :class:`DataNotFound` if a file is neither on disk nor downloadable, and
    :class:`CorruptDataFile` if a download fails its checksum.
    """
    wanted = list(source.files if names is None else names)
    found = locate(source.subdir, wanted, data_dir, gunzipped_ok=source.gunzipped_ok)
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return {name: path for name, path in found.items() if path is not None}
    if not download:
        reason = "Downloading is switched off (download=False)."
        raise DataNotFound(_missing_message(source, missing, data_dir, reason))
    if source.base_url is None:
        reason = "There is no public download: fetch them by hand."
        raise DataNotFound(_missing_message(source, missing, data_dir, reason))
    folder = data_root(data_dir) / source.subdir
    for name in missing:
        url = source.url(name)
        assert url is not None
        try:
            found[name] = fetch(url, folder / name, source.sha256.get(name), desc=f"{source.title} {name}")
        except CorruptDataFile:
            raise
        except (OSError, http.client.HTTPException, ValueError) as err:
            still = [n for n in missing if found[n] is None]
            raise DataNotFound(_missing_message(source, still, data_dir, f"Downloading {url} failed: {err}")) from err
    return {name: path for name, path in found.items() if path is not None}
