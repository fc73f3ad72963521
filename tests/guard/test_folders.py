"""Folder sources stay inside their roots: refused folders, skipped links and special files, bounded reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import ErrorType
from guard.fetching import Fetcher
from guard.folders import SAMPLES_FOLDER, folder_roots, inside_roots, read_bounded
from guard.gather import list_folder, preview_source, read_file, validate_location
from guard.types import DocumentError, RawDocument, SourceError


def hostile_folder(root: Path, outside: Path) -> Path:
    """A folder with one good note, a FIFO, a link out of the folder and a link to /dev/zero."""
    folder = root / "inbox"
    folder.mkdir(parents=True)
    (folder / "a-good.txt").write_text("Quarterly security review: all findings closed.")
    os.mkfifo(folder / "b-pipe.txt")
    outside.write_text("the operator's private notes")
    (folder / "c-escape.md").symlink_to(outside)
    (folder / "d-zero.txt").symlink_to("/dev/zero")
    return folder


def finishes_within(seconds: float, work: Callable[[], object]) -> object:
    """The result of `work`, failing the test (instead of hanging it) when it blocks longer than `seconds`."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_catching(work)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return outcome[0]


def _catching(work: Callable[[], object]) -> object:
    try:
        return work()
    except Exception as exc:
        return exc


def test_a_folder_outside_every_root_is_refused_at_registration_and_in_the_worker(tmp_path: Path) -> None:
    roots = [tmp_path / "imports"]
    (tmp_path / "imports").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "imports" / "sneaky").symlink_to(tmp_path / "elsewhere")
    for folder in ("/", "/etc", str(tmp_path / "elsewhere"), str(tmp_path / "imports" / "sneaky")):
        with pytest.raises(ValueError, match="is outside the folders sources may read") as refused:
            validate_location("folder", folder, folder_roots=roots)
        assert "LOREGUARD_FOLDER_ROOTS" in str(refused.value)
        with pytest.raises(SourceError) as info:
            list_folder(Path(folder), roots=roots)
        assert info.value.kind == ErrorType.FOLDER_REFUSED and not info.value.retryable
    (tmp_path / "imports" / "notes").mkdir()
    assert validate_location("folder", str(tmp_path / "imports" / "notes"), folder_roots=roots) == str(
        (tmp_path / "imports" / "notes").resolve()
    )


class _Settings:
    def __init__(self, roots: list[Path], state_dir: Path) -> None:
        self.folder_roots = roots
        self.state_dir = state_dir


def test_default_roots_are_the_samples_and_the_state_folders_imports(tmp_path: Path) -> None:
    assert folder_roots(_Settings([], tmp_path / "state")) == (
        SAMPLES_FOLDER,
        (tmp_path / "state" / "imports"),
    )
    assert inside_roots(SAMPLES_FOLDER, folder_roots(_Settings([], tmp_path))) == SAMPLES_FOLDER
    assert folder_roots(_Settings([tmp_path / "a"], tmp_path)) == ((tmp_path / "a").resolve(),)


def test_a_fifo_a_link_out_and_a_link_to_dev_zero_are_skipped_with_their_reasons(tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path, outside=tmp_path / "private.md")
    listed = list_folder(folder, roots=[tmp_path])
    assert [p.name for p in listed] == ["a-good.txt", "b-pipe.txt", "c-escape.md", "d-zero.txt"]

    outcomes = {p.name: finishes_within(5, lambda p=p: read_file(p, 1024, folder=folder)) for p in listed}
    good = outcomes.pop("a-good.txt")
    assert isinstance(good, RawDocument) and b"Quarterly security review" in good.data
    reasons = {
        name: outcome.reason for name, outcome in outcomes.items() if isinstance(outcome, DocumentError)
    }
    assert reasons == {
        "b-pipe.txt": "skipped b-pipe.txt: a FIFO, not a regular file",
        "c-escape.md": f"skipped c-escape.md: a symbolic link to {tmp_path / 'private.md'}, outside the source's folder",
        "d-zero.txt": "skipped d-zero.txt: a symbolic link to /dev/zero, outside the source's folder",
    }


def test_the_preview_shows_the_good_file_and_does_not_hang(tmp_path: Path, loopback_fetcher: Fetcher) -> None:
    folder = hostile_folder(tmp_path, outside=tmp_path / "private.md")
    docs = finishes_within(
        10, lambda: preview_source("folder", str(folder), loopback_fetcher, folder_roots=[tmp_path])
    )
    assert isinstance(docs, list) and [Path(d.uri).name for d in docs] == ["a-good.txt"]


def test_reads_are_bounded_whatever_the_size_on_disk_says(tmp_path: Path) -> None:
    # /proc files report a size of 0 and still have content; a device reports 0 and never ends.
    proc = finishes_within(5, lambda: read_bounded(Path("/proc/self/status"), Path("/proc"), 16))
    assert isinstance(proc, DocumentError) and proc.reason == "file exceeds 16 bytes"
    device = finishes_within(5, lambda: read_bounded(Path("/dev/zero"), Path("/"), 16))
    assert isinstance(device, DocumentError)
    assert device.reason == "skipped dev/zero: a character device, not a regular file"
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 16)
    assert read_bounded(small, tmp_path, 16) == b"x" * 16


def test_a_hard_link_to_a_file_outside_the_folder_is_skipped_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a-good.txt").write_text("Quarterly security review: all findings closed.")
    outside = tmp_path / "private.txt"
    outside.write_text("the operator's private notes")
    os.link(outside, folder / "b-linked.txt")  # the same inode, no path that says it leaves the folder
    (folder / "c-twins.txt").write_text("two names inside the folder are two names all the same")
    os.link(folder / "c-twins.txt", folder / "d-twins.txt")

    listed = list_folder(folder, roots=[tmp_path])
    outcomes = {p.name: _catching(lambda p=p: read_file(p, 1024, folder=folder)) for p in listed}

    assert isinstance(outcomes.pop("a-good.txt"), RawDocument)
    for name, links in (("b-linked.txt", 2), ("c-twins.txt", 2), ("d-twins.txt", 2)):
        outcome = outcomes[name]
        assert isinstance(outcome, DocumentError), name
        assert outcome.reason == (
            f"skipped {name}: a hard link ({links} names for this file), whose other name may lie outside the "
            "source's folder; copy the file in, or an operator can allow hard links with "
            "LOREGUARD_FOLDER_ALLOW_HARD_LINKS=true"
        )
    allowed = read_file(folder / "b-linked.txt", 1024, folder=folder, allow_hard_links=True)
    assert allowed.data == b"the operator's private notes"  # what an operator opts in to
    outside.unlink()  # the last other name gone: one link, an ordinary file of the folder again
    assert read_file(folder / "b-linked.txt", 1024, folder=folder).data == b"the operator's private notes"
