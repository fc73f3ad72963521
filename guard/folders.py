"""Folder sources stay inside their roots: which folders may be registered, and how a file in one is read.

A folder must lie inside one of the configured roots (`LOREGUARD_FOLDER_ROOTS`); the registration forms and the
worker both ask `inside_roots`. A file is read only when it is a regular file whose real path stays inside its
source's folder and that has no other hard link (unless an operator allows them), and never more than the byte
limit, whatever the file system says its size is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from core.errors import ErrorType
from core.vocabulary import Stage
from guard.types import DocumentError, SourceError

SAMPLES_FOLDER = Path(__file__).resolve().parents[1] / "data" / "samples"
IMPORTS_FOLDER = "imports"  # under the state folder: where an operator drops folders to import by default
_READ_CHUNK = 1024 * 1024


class FolderSettings(Protocol):
    @property
    def folder_roots(self) -> Sequence[Path]: ...
    @property
    def state_dir(self) -> Path: ...


class FolderRefused(SourceError):
    """A folder outside every root: the operator has to move it or add a root."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorType.FOLDER_REFUSED, message)


def folder_roots(settings: FolderSettings) -> tuple[Path, ...]:
    """The configured roots, or by default the bundled sample folder and `<state dir>/imports`, made real."""
    roots = list(settings.folder_roots) or [SAMPLES_FOLDER, settings.state_dir / IMPORTS_FOLDER]
    return tuple(Path(root).expanduser().resolve() for root in roots)


def inside_roots(folder: Path, roots: Sequence[Path]) -> Path:
    """The real path of `folder` (symbolic links resolved) when it lies inside a root, else FolderRefused."""
    real = folder.expanduser().resolve()
    if any(real.is_relative_to(root) for root in roots):
        return real
    listed = ", ".join(str(root) for root in roots) or "(none)"
    raise FolderRefused(
        f"folder {folder} is outside the folders sources may read ({listed}); "
        "an operator can add a root to LOREGUARD_FOLDER_ROOTS"
    )


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_bounded(path: Path, folder: Path, max_bytes: int, *, allow_hard_links: bool = False) -> bytes:
    """The bytes of `path`, a file under the source's `folder`, or DocumentError with the reason it was skipped.

    Opened without following a last symbolic link and without blocking, so a FIFO is seen for what it is
    instead of waiting for a writer; read at most `max_bytes + 1` bytes, so /dev/zero or a growing file
    cannot run on. A regular file with more than one link is skipped unless `allow_hard_links`: its other
    name may lie anywhere on the file system (the same inode as /etc/shadow, say), and no path tells where.
    """
    name = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
    real = path.resolve()
    if not real.is_relative_to(folder.resolve()):
        raise DocumentError(
            Stage.INGEST, f"skipped {name}: a symbolic link to {real}, outside the source's folder"
        )
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        # The file vanished or is unreadable since listing (or is a socket): that document fails, not the batch.
        raise DocumentError(Stage.INGEST, f"cannot read {name}: {exc.strerror or exc}") from exc
    with open(fd, "rb", buffering=0, closefd=True) as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError(
                Stage.INGEST, f"skipped {name}: {_file_kind(info.st_mode)}, not a regular file"
            )
        if info.st_nlink > 1 and not allow_hard_links:  # checked on the opened file: no swap after the check
            raise DocumentError(
                Stage.INGEST,
                f"skipped {name}: a hard link ({info.st_nlink} names for this file), whose other name may lie "
                "outside the source's folder; copy the file in, or an operator can allow hard links with "
                "LOREGUARD_FOLDER_ALLOW_HARD_LINKS=true",
            )
        if info.st_size > max_bytes:
            raise DocumentError(Stage.INGEST, f"file is {info.st_size} bytes, exceeds {max_bytes} bytes")
        os.set_blocking(fd, True)
        data = bytearray()
        while len(data) <= max_bytes:
            piece = file.read(min(_READ_CHUNK, max_bytes + 1 - len(data)))
            if not piece:
                break
            data += piece
    if len(data) > max_bytes:  # grew between stat and read
        raise DocumentError(Stage.INGEST, f"file exceeds {max_bytes} bytes")
    return bytes(data)
