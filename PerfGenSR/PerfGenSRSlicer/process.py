"""Run the engine in a background process so that a GUI (Slicer) never blocks: start ``python -m
PerfGenSRLib.cli ... --progress-lines``, read its ``PROGRESS <done> <total>`` lines on a thread,
report them through a non-blocking :meth:`BackgroundProcess.poll` with the elapsed time and an
estimate of the time left, hand every other output line to the caller (:meth:`read_log`), stop the
whole process tree on cancel (and every running one with :func:`cancel_all`, e.g. when Slicer quits),
hide the console window on Windows, and keep the tail of stderr for the error message. No Qt: the
caller polls (in Slicer from a ``qt.QTimer``).

:class:`SuperResolveJob` adds the frame exchange: the study goes to a temporary ``.npy``, the
result (and uncertainty) come back the same way and get the input's geometry again.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from PerfGenSRLib import kspace
from PerfGenSRLib.defaults import SuperResolveOptions
from PerfGenSRLib.errors import Cancelled, PerfGenError
from PerfGenSRLib.io import write_study
from PerfGenSRLib.study import Study

PROGRESS_PREFIX = "PROGRESS"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding PerfGenSRLib
# how ``PerfGenSRLib.cli`` reports a user error: one line, and for a refused option a pointer to --help
CLI_ERROR = re.compile(r"perfgen-sr [\w-]+: error: (?P<message>.*?)(?: \(see perfgen-sr .*--help\))?")


@dataclass(frozen=True)
class Progress:
    """What a background process has reported so far."""

    done: int = 0
    total: int = 0
    finished: bool = False
    returncode: int | None = None
    elapsed: float = 0.0  # seconds since the process started
    remaining: float | None = None  # estimated seconds left, from the pace so far; None before any step

    @property
    def succeeded(self) -> bool:
        """True once the process has exited with status 0."""
        return self.finished and self.returncode == 0


def parse_progress(line: str) -> tuple[int, int] | None:
    """``(done, total)`` from a ``PROGRESS <done> <total>`` line, else None."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != PROGRESS_PREFIX:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


def estimate_remaining(done: int, total: int, at: float, now: float) -> float | None:
    """Seconds left when ``done`` of ``total`` steps took ``at`` seconds, counted down to ``now``."""
    if done <= 0 or total <= 0:
        return None
    return max(0.0, at * (total - done) / done - (now - at))


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def popen_options(windows: bool = os.name == "nt") -> dict:
    """``Popen`` keywords: a process group of its own (cancel reaches every descendant) and, on
    Windows, no console window (as ``slicer.util.launchConsoleProcess`` does)."""
    if not windows:
        return {"start_new_session": True}
    startupinfo = subprocess.STARTUPINFO()
    startupinfo.dwFlags |= subprocess.STARTF_USESHOWWINDOW
    startupinfo.wShowWindow = subprocess.SW_HIDE
    return {
        "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW,
        "startupinfo": startupinfo,
    }


_running: weakref.WeakSet = weakref.WeakSet()


def cancel_all() -> None:
    """Stop every background process still running (Slicer calls this when it quits)."""
    for process in list(_running):
        process.cancel(grace=1.0)


def engine_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the engine importable (its folder first on ``PYTHONPATH``)."""
    env = dict(os.environ, **(extra or {}))
    paths = [str(PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def engine_error(stderr: Sequence[str], returncode: int | None) -> str:
    """The message of a failed engine run, from the tail of its stderr: the command line's one-line
    error without its ``perfgen-sr <command>: error:`` prefix; else, after a traceback, its last line
    (the exception); else the exit status (a killed process writes nothing)."""
    for line in reversed(stderr):
        match = CLI_ERROR.fullmatch(line.strip())
        if match:
            return match.group("message")
    if any(line.startswith("Traceback (most recent call last)") for line in stderr):
        return stderr[-1].strip()
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the engine was stopped ({name}) before it finished"
    return f"the engine exited with status {returncode}"


class BackgroundProcess:
    """A child process whose progress and exit are read without ever blocking the caller."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        stderr_lines: int = 50,
    ):
        self.command = list(command)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._log: queue.SimpleQueue = queue.SimpleQueue()
        self._progress = Progress()
        self._progress_at = 0.0  # seconds from the start to the latest progress line
        self.cancelled = False
        self._started, self._ended = time.monotonic(), None
        self._process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            env=env,
            cwd=cwd,
            **popen_options(),
        )
        _running.add(self)
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def _read_stdout(self) -> None:
        for line in self._process.stdout:
            parsed = parse_progress(line)
            if parsed is not None:
                self._events.put((*parsed, time.monotonic() - self._started))
            elif line.strip():
                self._log.put(line.rstrip())
        self._process.stdout.close()

    def _read_stderr(self) -> None:
        for line in self._process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())
                self._log.put(line.rstrip())
        self._process.stderr.close()

    def read_log(self) -> list[str]:
        """Output lines (stdout other than progress, and stderr) since the last call, in arrival order."""
        lines = []
        while True:
            try:
                lines.append(self._log.get_nowait())
            except queue.Empty:
                return lines

    def poll(self) -> Progress:
        """The latest progress, and whether the process has finished (output fully read)."""
        done, total, at = self._progress.done, self._progress.total, self._progress_at
        returncode = self._process.poll()
        finished = returncode is not None and not any(reader.is_alive() for reader in self._readers)
        while True:
            try:
                done, total, at = self._events.get_nowait()
            except queue.Empty:
                break
        if finished and self._ended is None:
            self._ended = time.monotonic()
            _running.discard(self)
        elapsed = (self._ended or time.monotonic()) - self._started
        self._progress_at = at
        self._progress = Progress(
            done,
            total,
            finished,
            returncode if finished else None,
            elapsed=elapsed,
            remaining=0.0 if finished else estimate_remaining(done, total, at, elapsed),
        )
        return self._progress

    def wait(self, timeout: float | None = None) -> Progress:
        """Block until the process has finished (for scripts and tests; a GUI polls instead)."""
        self._process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return self.poll()

    @property
    def error_message(self) -> str:
        """The last non-empty line the process wrote to stderr ('' if none)."""
        return self._stderr[-1] if self._stderr else ""

    @property
    def stderr(self) -> str:
        """The tail of the process's stderr."""
        return "\n".join(self._stderr)

    def cancel(self, grace: float = 3.0) -> None:
        """Stop the process and all its descendants: terminate, then kill after ``grace`` seconds."""
        self.cancelled = True
        if self._process.poll() is not None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.pid)], capture_output=True, check=False)
        else:
            self._signal_group(signal.SIGTERM)
            try:
                self._process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
            self._signal_group(signal.SIGKILL)  # descendants that ignored SIGTERM, even if the leader left
        self._process.wait()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)  # the group id is the leader's pid (start_new_session)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class SuperResolveResult:
    """What a background super-resolution gives back, for :func:`results.addResultSequences`.

    The fields, and their meaning, are those of the engine's ``PerfGenSRLib.sample.SuperResolution``
    (a test keeps the names equal). It is a type of its own only because ``sample`` imports torch
    at its top, and this module runs in Slicer's process, which never imports torch; once the
    engine's result type lives in a torch-free module, this one can be that type.
    """

    study: Study
    uncertainty: Study | None
    low_res: Study


class SuperResolveJob:
    """``perfgen-sr super-resolve`` of one study in a background process, frames exchanged as files."""

    def __init__(
        self,
        study: Study,
        method: str = "perfgen",
        *,
        python: str | os.PathLike | None = None,
        lr_fraction: float | None = None,
        temp_dir: str | os.PathLike | None = None,
        **options,
    ):
        """``options``: the other fields of :class:`~PerfGenSRLib.defaults.SuperResolveOptions`."""
        settings = SuperResolveOptions(method, **options)
        if lr_fraction is not None:
            kspace.check_fraction(lr_fraction)
        self.study, self.method, self.lr_fraction = study, method, lr_fraction
        if temp_dir is not None:
            Path(temp_dir).mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="perfgensr-", dir=temp_dir))
        self.input_path = self.workdir / "input.npy"
        self.output_path = self.workdir / "output.npy"
        self.uncertainty_path = self.workdir / "uncertainty.npy" if settings.draws > 1 else None
        write_study(study.with_frames(study.frames, single_slice=False), self.input_path)
        command = [
            str(python or sys.executable),
            "-m",
            "PerfGenSRLib.cli",
            "super-resolve",
            "--input",
            str(self.input_path),
            "--output",
            str(self.output_path),
            *settings.arguments(),
            "--progress-lines",
        ]
        if self.uncertainty_path is not None:
            command += ["--uncertainty", str(self.uncertainty_path)]
        if lr_fraction is not None:
            command += ["--fraction", str(lr_fraction)]
        try:
            self.process = BackgroundProcess(command, env=engine_environment())
        except OSError as error:
            self.cleanup()
            raise PerfGenError(
                f"could not start the engine with {command[0]} ({error}); check the Python executable"
            ) from None

    def poll(self) -> Progress:
        """Frames done so far and whether the run has finished."""
        return self.process.poll()

    def read_log(self) -> list[str]:
        """The engine's output lines since the last call."""
        return self.process.read_log()

    def cancel(self) -> None:
        """Stop the run (the whole process tree) and remove its files."""
        self.process.cancel()
        self.cleanup()

    def result(self) -> SuperResolveResult:
        """The result of a finished run; raises the run's error (:func:`engine_error`) or Cancelled
        as a PerfGenError."""
        progress = self.process.poll()
        if self.process.cancelled:
            raise Cancelled("cancelled by the user; nothing was added")
        if not progress.finished:
            raise PerfGenError("the super-resolution is still running; wait for it to finish")
        try:
            if progress.returncode != 0:
                raise PerfGenError(engine_error(self.process.stderr.splitlines(), progress.returncode))
            return SuperResolveResult(
                study=self._read(self.output_path),
                uncertainty=self._read(self.uncertainty_path) if self.uncertainty_path else None,
                low_res=(
                    self.study.with_frames(kspace.degrade(self.study.frames, self.lr_fraction))
                    if self.lr_fraction is not None
                    else self.study
                ),
            )
        finally:
            self.cleanup()

    def _read(self, path: Path) -> Study:
        try:
            frames = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            raise PerfGenError(f"the engine finished but wrote no readable result at {path}") from None
        return self.study.with_frames(frames.reshape(self.study.shape))

    def cleanup(self) -> None:
        """Remove the exchange files."""
        shutil.rmtree(self.workdir, ignore_errors=True)
