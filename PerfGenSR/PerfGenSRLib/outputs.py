"""Where a command writes, decided before any work: one planner for the outputs of every command.

:func:`plan_outputs` checks each output a command was given — its format from the extension (any
letter case), that no two outputs share a path, that no output is, holds or lies inside an input,
that an existing output is replaced only with ``overwrite``, and that its folder can be written —
and refuses with one line before anything is read or computed. :meth:`OutputPlan.staged` then
yields a staging path per output; the block writes there, and only when it has succeeded are all
outputs moved into place together (one that cannot be moved undoes the others). On a failure or an
interruption (SIGINT, SIGTERM: :mod:`.signals`) the staging folders and every folder the run created
are removed, so nothing of the run is left behind, visible or hidden. Staging folders are named
``NAME.PID.XXXX.partial`` beside their target (:func:`.io.staging_folder`): only a SIGKILL can leave
one, in plain sight, and the next write of the same target removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import PerfGenError
from .io import companion_files, staging_folder, study_format
from .signals import deferred

OVERWRITE_HINT = "add `overwrite` to replace it, or choose another path"


@dataclass(frozen=True)
class Output:
    """One output of a command: the option that named it, its absolute path and its kind.

    ``kind`` is a study format (``npy``, ``image``, ``dicom``: the study replaces the path as a
    whole) or ``folder`` (a results folder the run's files are merged into)."""

    option: str
    path: Path
    kind: str

    def claims(self) -> list[Path]:
        """Every path this output writes: the target and, for a MetaImage header, its data file."""
        return [self.path, *companion_files(self.path)]


def _absolute(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def _key(path: Path) -> tuple[str, ...]:
    """Path parts compared without letter case, as case-insensitive file systems (macOS, Windows) do."""
    return tuple(part.casefold() for part in path.parts)


def _within(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` is ``outer`` or lies inside it (letter case aside, links resolved)."""
    a, b = _key(inner.resolve()), _key(outer.resolve())
    return a[: len(b)] == b


def plan_outputs(
    studies: dict[str, str | os.PathLike | None] | None = None,
    folders: dict[str, str | os.PathLike | None] | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
) -> OutputPlan:
    """Check every output (``{option: path}``; None for one not asked for) and return the plan to write them.

    ``studies`` are study outputs (format from the extension, a DICOM series for a path without
    one), ``folders`` results folders; ``inputs`` are never written, held or entered by an output.
    """
    outputs = [
        Output(option, _absolute(path), study_format(path) if kind == "study" else "folder")
        for kind, given in (("study", studies or {}), ("folder", folders or {}))
        for option, path in given.items()
        if path is not None
    ]
    sources = [_absolute(path) for path in inputs]
    for i, output in enumerate(outputs):
        _check_against_inputs(output, sources)
        for other in outputs[:i]:
            if any(_within(a, b) or _within(b, a) for a in output.claims() for b in other.claims()):
                raise PerfGenError(
                    f"{output.option} {output.path} and {other.option} {other.path} share a path; "
                    "give each output its own"
                )
        _check_existing(output, overwrite)
        _check_writable(output)
    return OutputPlan(outputs)


def _check_against_inputs(output: Output, sources: list[Path]) -> None:
    for source in sources:
        if _within(output.path, source) and _key(output.path.resolve()) == _key(source.resolve()):
            raise PerfGenError(
                f"{output.option} {output.path} is the input; choose another path so the input is kept"
            )
        if source.is_dir() and _within(output.path, source):
            raise PerfGenError(
                f"{output.option} {output.path} lies inside the input folder {source}; "
                "write outside it so the input is kept as it is"
            )
        if output.kind != "folder" and _within(source, output.path):
            raise PerfGenError(
                f"{output.option} {output.path} holds the input {source}; choose another path so the input is kept"
            )


def _check_existing(output: Output, overwrite: bool) -> None:
    path = output.path
    if output.kind in ("dicom", "folder"):
        if path.exists() and not path.is_dir():
            raise PerfGenError(f"{output.option} {path} is a file; give a folder path")
        if not path.is_dir() or not any(path.iterdir()):
            return
        if output.kind == "dicom" and any(p.is_dir() or p.suffix.lower() != ".dcm" for p in path.iterdir()):
            raise PerfGenError(
                f"{output.option} {path} holds files other than DICOM images; "
                "choose a new or empty folder for the series"
            )
        if not overwrite:
            what = "a DICOM series" if output.kind == "dicom" else "files"
            raise PerfGenError(f"{output.option} {path} already holds {what}; {OVERWRITE_HINT}")
        return
    if path.is_dir():
        raise PerfGenError(f"{output.option} {path} is a folder; give a file path for the output")
    existing = [p for p in output.claims() if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise PerfGenError(f"{output.option} {existing[0]} already exists; {OVERWRITE_HINT}")


def _check_writable(output: Output) -> None:
    """The output's nearest existing folder must be a folder this process may create files in."""
    folder = output.path.parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():
            raise PerfGenError(f"{output.option} {output.path}: {folder} is a broken link")
        folder = folder.parent
    if not folder.is_dir():
        raise PerfGenError(f"{output.option} {output.path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PerfGenError(
            f"{output.option} {output.path}: the folder {folder} is not writable; choose another place"
        )


class OutputPlan:
    """Checked outputs, written through :meth:`staged`."""

    def __init__(self, outputs: list[Output]):
        self.outputs = {output.option: output for output in outputs}

    def __getitem__(self, option: str) -> Output:
        return self.outputs[option]

    @contextlib.contextmanager
    def staged(self) -> Iterator[dict[str, Path]]:
        """Staging paths by option; all outputs are published together when the block succeeds."""
        created: list[Path] = []  # folders this run made, outermost first
        staging: list[Path] = []
        try:
            paths = {}
            for option, output in self.outputs.items():
                created += _make_parents(output.path.parent)
                staging.append(staging_folder(output.path))
                paths[option] = staging[-1] / output.path.name
                if output.kind == "folder":
                    paths[option].mkdir()
            yield paths
            with deferred():  # a signal now is honoured by finishing the publication
                self._publish(paths, staging)
        except BaseException:
            for folder in staging:
                shutil.rmtree(folder, ignore_errors=True)
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)

    def _publish(self, paths: dict[str, Path], staging: list[Path]) -> None:
        """Move every staged output onto its target; on any failure put back what was there."""
        done: list[tuple[Path, Path | None]] = []  # (target, where its previous version went)
        made: list[Path] = []  # sub-folders created while merging into an existing results folder
        try:
            for (option, output), backup_dir in zip(self.outputs.items(), staging):
                staged = paths[option]
                if output.kind == "folder" and output.path.is_dir():
                    moves = [
                        (p, output.path / p.relative_to(staged))
                        for p in sorted(staged.rglob("*"))
                        if not p.is_dir()
                    ]
                else:
                    moves = [(staged.parent / c.name, c) for c in companion_files(output.path)] + [
                        (staged, output.path)
                    ]
                for number, (source, target) in enumerate(moves):
                    if not (source.exists() or source.is_symlink()):
                        if source == staged:
                            raise PerfGenError(
                                f"{option} {output.path} was not written; nothing was published"
                            )
                        continue  # a companion file the format did not need
                    backup = None
                    if target.exists() or target.is_symlink():
                        backup = backup_dir / f"replaced-{number}"
                        os.replace(target, backup)
                    done.append((target, backup))
                    made += _make_parents(target.parent)
                    os.replace(source, target)
        except BaseException:
            for target, backup in reversed(done):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                if backup is not None:
                    os.replace(backup, target)
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))
