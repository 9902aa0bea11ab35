"""``perfgen-sr super-resolve --out FOLDER``: a cohort of studies, one output each, resumable by study.

What ``input`` names (:func:`find_studies`):

- a ``.txt`` list file: one study per line (a study file or a study folder, taken as it is),
  relative paths from the list's folder, blank lines and ``#`` comments skipped;
- a folder holding DICOM images at its top, or only sub-folders whose DICOM images share one
  ``StudyInstanceUID`` (one series per slice): one DICOM study (a cohort of one);
- a phantom folder (``metadata.json``): one study;
- any other folder: a cohort, each study file (``.npy``, NIfTI, NRRD, MHA/MHD) and each sub-folder
  (a DICOM study, a phantom folder) in it one study; other files are refused by name, and DICOM
  images beside study files too;
- a study file: a cohort of one.

Each study's output is ``out/NAME`` plus the format's suffix (NAME: the file name without its
format suffix, or the folder's name), in the input's format or ``format`` (phantom folders:
``.nii.gz``; DICOM: a series folder). A study is done when all its outputs exist: each is published
atomically (:mod:`.outputs`), so a partial one never looks done, and an interrupted run leaves its
finished studies and nothing else. The same call again does only the rest; ``overwrite`` redoes all.

Under ``torchrun --nproc_per_node=N`` rank r takes the pending studies r, r + N, ... and the ranks
gather their counts at the end, so rank 0 alone reports; each study is computed as one process
would compute it, so the files are the same for any N.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .acquisition import along_rows, phase_and_lines
from .data import is_phantom_folder, is_study_file
from .defaults import STUDY_FORMATS as FORMATS
from .distributed import Distributed
from .errors import PerfGenError
from .io import NIFTI_SUFFIXES, companion_files, read_study, write_study
from .outputs import OutputPlan, plan_outputs
from .study import Study

LIST_SUFFIX = ".txt"
# A rank whose share ends early waits for the others at the final gather; studies can take hours.
WAIT = datetime.timedelta(days=2)
SHOWN = 5  # names listed in an error before "and N more"
SCANNED = 20  # files of a sub-folder looked at for a DICOM study UID


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _dicom_header(path: Path):
    """The header of a DICOM file (by its ``.dcm`` suffix, ``DICM`` preamble or a readable header), else None."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # whatever pydicom cannot parse is not DICOM
            return None
    return header if "SOPClassUID" in header else None


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() == ".dcm" or path.name.upper() == "DICOMDIR" or _dicom_header(path) is not None


def _study_uid(folder: Path) -> str | None:
    """The ``StudyInstanceUID`` of the first DICOM image found in ``folder`` (its first files only)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file())[:SCANNED]:
        header = _dicom_header(path)
        if header is not None and "StudyInstanceUID" in header:
            return str(header.StudyInstanceUID)
    return None


def _one_dicom_study(folders: list[Path]) -> bool:
    """Sub-folders that are the series of one DICOM study (one series per slice): one study UID."""
    if len(folders) < 2 or any(is_phantom_folder(f) for f in folders):
        return False
    uids = {_study_uid(f) for f in folders}
    return len(uids) == 1 and None not in uids


def find_studies(source: str | os.PathLike) -> list[Path]:
    """The studies ``source`` names (see the module's docstring), in order; refuses what is not one."""
    source = Path(source)
    if not source.exists():
        raise PerfGenError(f"`input` {source}: no such file or folder")
    if source.is_file():
        if source.suffix.lower() == LIST_SUFFIX:
            return _listed(source)
        if not is_study_file(source):
            raise PerfGenError(
                f"`input` {source} is neither a study file (.npy, .nii, .nii.gz, .nrrd, .mha, .mhd) "
                f"nor a {LIST_SUFFIX} list of studies"
            )
        return [source]
    if is_phantom_folder(source):
        return [source]
    entries = [p for p in sorted(source.iterdir()) if not p.name.startswith(".")]
    files = [p for p in entries if p.is_file()]
    studies = [p for p in files if is_study_file(p)]
    parts = {c.name for p in studies for c in companion_files(p)} | {
        p.name[:-4] + ".raw" for p in studies if p.name.lower().endswith(".mhd")
    }
    others = [p for p in files if p not in studies and p.name not in parts]
    if any(_is_dicom(p) for p in others):
        if studies:
            raise PerfGenError(
                f"`input` {source} mixes DICOM images with study files ({_names(studies)}); give each "
                "DICOM study a folder of its own"
            )
        return [source]  # one DICOM study
    if others:
        raise PerfGenError(
            f"`input` {source} holds files that are neither studies nor DICOM images: {_names(others)}; "
            f"move them out, or list the studies in a {LIST_SUFFIX} file"
        )
    folders = [p for p in entries if p.is_dir()]
    if not studies and _one_dicom_study(folders):
        return [source]  # its series lie in sub-folders
    found = sorted(studies + folders)
    if not found:
        raise PerfGenError(
            f"`input` {source} holds no studies; give a folder of study files or study folders "
            f"(DICOM, phantom), or a {LIST_SUFFIX} list of them"
        )
    return found


def _listed(list_file: Path) -> list[Path]:
    lines = [line.strip() for line in list_file.read_text().splitlines()]
    paths = [Path(line).expanduser() for line in lines if line and not line.startswith("#")]
    paths = [p if p.is_absolute() else list_file.parent / p for p in paths]
    if not paths:
        raise PerfGenError(f"`input` {list_file} lists no studies; write one study path per line")
    missing = [p for p in paths if not p.exists()]
    if missing:
        shown = ", ".join(map(str, missing[:SHOWN])) + (
            f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        )
        raise PerfGenError(f"`input` {list_file} lists studies that do not exist: {shown}")
    unknown = [p for p in paths if p.is_file() and not is_study_file(p)]
    if unknown:
        raise PerfGenError(f"`input` {list_file} lists files that are not studies: {_names(unknown)}")
    return paths


def study_name(path: Path) -> str:
    """The name a study's outputs get: its file name without the format suffix, or its folder's name."""
    lower = path.name.lower()
    if path.is_file():
        for suffix in sorted((".npy", *NIFTI_SUFFIXES), key=len, reverse=True):
            if lower.endswith(suffix):
                return path.name[: -len(suffix)]
    return path.name


def _suffix(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise PerfGenError(f"unknown `format` '{format}'; choose from {', '.join(FORMATS)}")
        return FORMATS[format]
    if is_phantom_folder(path):
        return ".nii.gz"
    if path.is_dir():
        return ""
    return path.name[len(study_name(path)) :].lower()


@dataclass(frozen=True)
class CohortStudy:
    """One study of a cohort: where it is read and where its outputs go (by option name)."""

    name: str
    path: Path
    outputs: dict[str, Path]

    @property
    def done(self) -> bool:
        return all(p.exists() for output in self.outputs.values() for p in (output, *companion_files(output)))


@dataclass
class Cohort:
    """The studies of a cohort, checked before any work: those done and the plans of the others."""

    source: Path
    out: Path
    studies: list[CohortStudy]
    plans: dict[str, OutputPlan] = field(default_factory=dict)  # by study name, for pending ones

    @property
    def pending(self) -> list[CohortStudy]:
        return [study for study in self.studies if study.name in self.plans]

    def finished(self) -> int:
        """How many studies have all their outputs now, whichever process wrote them."""
        return sum(study.done for study in self.studies)


def plan_cohort(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str | None = None,
    uncertainty: str | os.PathLike | None = None,
    overwrite: bool = False,
    inputs: list[str | os.PathLike] = (),
) -> Cohort:
    """Find the studies, name their outputs and check them (:func:`outputs.plan_outputs`), before any work.

    Done studies are left out of the plans unless ``overwrite``; ``inputs`` (a model) are never written."""
    source, out = Path(source), Path(out)
    if out.exists() and not out.is_dir():
        raise PerfGenError(f"`out` {out} is a file; give a folder for the cohort's outputs")
    studies, seen = [], {}
    folders = {"out": out, **({"uncertainty": Path(uncertainty)} if uncertainty else {})}
    for path in find_studies(source):
        name = study_name(path)
        if name.casefold() in seen:
            raise PerfGenError(
                f"`input` {source} holds two studies named {name} ({seen[name.casefold()]} and {path}); "
                "outputs are named after their studies, so rename one"
            )
        seen[name.casefold()] = path
        suffix = _suffix(path, format)
        studies.append(CohortStudy(name, path, {o: f / (name + suffix) for o, f in folders.items()}))
    cohort = Cohort(source, out, studies)
    for study in studies:
        if overwrite or not study.done:
            cohort.plans[study.name] = plan_outputs(
                {f"`{option}`": path for option, path in study.outputs.items()},
                inputs=[source, study.path, *[p for p in inputs if p]],
                overwrite=overwrite,
            )
    return cohort


def read_cohort_study(path: Path) -> Study:
    """One study of a cohort: a phantom folder's noisy image, else the study file or DICOM folder."""
    if is_phantom_folder(path):
        from .phantom import read_phantom_study

        return read_phantom_study(path).to_study()
    return read_study(path, min_frames=1)


@dataclass
class CohortResult:
    """What a cohort run did, over all ranks."""

    studies: int  # in the cohort
    skipped: int  # done before this run
    written: list[str]
    failed: list[tuple[str, str]]  # (study, message), in cohort order

    def summary(self, out: Path) -> str:
        line = f"super-resolved {len(self.written)} of {self.studies} studies into {out}"
        if self.skipped:
            line += f" ({self.skipped} already done, skipped)"
        return line


def super_resolve_cohort(
    cohort: Cohort,
    runtime: Distributed,
    *,
    method: str = "perfgen",
    model: str | os.PathLike | None = None,
    phase_axis: str | None = None,
    measured_lines: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> CohortResult:
    """Super-resolve this rank's share of the pending studies (:func:`sample.super_resolve_study` with
    ``options``), publish each as it finishes, and gather what every rank did. The phase axis and the
    measured lines are each study's own as :func:`acquisition.phase_and_lines` chooses them (the
    arguments win over the header, which wins over the rows).

    A study that cannot be read is reported and the others go on; ``progress(done, total)`` counts
    the cohort's finished studies on rank 0."""
    from .sample import super_resolve_study

    written, failed = [], []
    total = len(cohort.studies)
    runtime.gather(None)  # every rank has planned (seen the same done studies) before any is written
    if progress and runtime.main:
        progress(cohort.finished(), total)
    for study in runtime.shard(cohort.pending):
        try:
            frames = read_cohort_study(study.path)
        except PerfGenError as error:
            failed.append((study.name, str(error)))
            continue
        axis, lines, _ = phase_and_lines(frames, phase_axis, measured_lines, options.get("lr_fraction"))
        result = super_resolve_study(
            along_rows(frames, axis),
            method,
            model=model,
            device=str(runtime.device),
            measured_lines=lines,
            **options,
        )
        model_name = str(model or "bundled")
        with cohort.plans[study.name].staged() as staged:
            write_study(along_rows(result.study, axis), staged["`out`"], method=method, model=model_name)
            if "`uncertainty`" in staged:
                write_study(
                    along_rows(result.uncertainty, axis),
                    staged["`uncertainty`"],
                    method=f"{method} uncertainty (SD)",
                    model=model_name,
                )
        written.append(study.name)
        if progress and runtime.main:
            progress(cohort.finished(), total)
    ranks = runtime.gather((written, failed))
    order = {study.name: i for i, study in enumerate(cohort.studies)}
    return CohortResult(
        studies=total,
        skipped=total - len(cohort.pending),
        written=sorted((n for w, _ in ranks for n in w), key=order.get),
        failed=sorted((f for _, fs in ranks for f in fs), key=lambda f: order[f[0]]),
    )


@contextlib.contextmanager
def staged_on_rank0(plan: OutputPlan, runtime: Distributed, option: str) -> Iterator[Path]:
    """A results folder written by every rank: rank 0 stages it and shares the staging path, every rank
    writes its share there, and rank 0 publishes it when its block ends (after the ranks' gather)."""
    if not runtime.main:
        yield runtime.share()
        return
    with plan.staged() as staged:
        yield runtime.share(staged[option])
