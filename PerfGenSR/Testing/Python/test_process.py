"""Background runs: progress lines read without blocking, cancel stops the whole process tree, the
last stderr line becomes the error, and a real ``perfgen-sr super-resolve`` round trip through files."""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from PerfGenSRLib import kspace
from PerfGenSRLib.errors import Cancelled, PerfGenError
from PerfGenSRLib.io import Study
from PerfGenSRSlicer.process import BackgroundProcess, Progress, SuperResolveJob, parse_progress


def poll_until(process, condition, timeout=20.0) -> Progress:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = process.poll()
        if condition(progress):
            return progress
        time.sleep(0.02)
    raise AssertionError(f"condition not reached in {timeout} s; last progress {progress}")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        return "\nState:\tZ" not in status.read_text()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_parse_progress_accepts_only_progress_lines():
    assert parse_progress("PROGRESS 3 10\n") == (3, 10)
    assert parse_progress("PROGRESS three 10") is None
    assert parse_progress("wrote out.nii.gz") is None
    assert parse_progress("PROGRESS 1") is None


def test_progress_is_read_while_the_process_runs_and_when_it_ends():
    script = (
        "import sys, time\n"
        "print('loading model', flush=True)\n"
        "for i in range(1, 4):\n"
        "    print(f'PROGRESS {i} 5', flush=True); time.sleep(0.05)\n"
        "time.sleep(0.6)\n"
        "print('PROGRESS 5 5', flush=True)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    start = time.monotonic()
    first = process.poll()
    assert time.monotonic() - start < 0.1  # poll never waits for the child
    assert not first.finished
    midway = poll_until(process, lambda p: p.done == 3)
    assert midway.total == 5 and not midway.finished and midway.returncode is None
    final = poll_until(process, lambda p: p.finished)
    assert (final.done, final.total, final.returncode, final.succeeded) == (5, 5, 0, True)


def test_failure_reports_the_last_stderr_line():
    script = (
        "import sys\n"
        "print('PROGRESS 1 4', flush=True)\n"
        "print('Traceback noise', file=sys.stderr)\n"
        "print('perfgen-sr super-resolve: error: no bundled gan model; give one with --model', file=sys.stderr)\n"
        "sys.exit(2)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    final = process.wait(20)
    assert final.finished and final.returncode == 2 and not final.succeeded
    assert final.done == 1
    assert (
        process.error_message
        == "perfgen-sr super-resolve: error: no bundled gan model; give one with --model"
    )


def test_cancel_kills_the_process_and_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('PROGRESS 0 10', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    poll_until(process, lambda p: p.total == 10)
    child = int(pid_file.read_text())
    assert alive(process.pid) and alive(child)
    start = time.monotonic()
    process.cancel()
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    final = poll_until(process, lambda p: p.finished)
    assert process.cancelled and final.returncode != 0


def test_cancel_kills_a_process_that_ignores_sigterm():
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('PROGRESS 0 1', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    poll_until(process, lambda p: p.total == 1)
    process.cancel(grace=0.3)
    assert poll_until(process, lambda p: p.finished).returncode != 0


def _study() -> Study:
    rng = np.random.default_rng(0)
    frames = rng.random((4, 1, 24, 20), dtype=np.float32) * 50 + 10
    return Study(frames, spacing=(1.4, 1.5, 8.0), origin=(3.0, -4.0, 5.0), frame_times=np.arange(4) * 0.9)


def test_super_resolve_job_round_trip_through_the_real_cli():
    study = _study()
    job = SuperResolveJob(study, "zeropad", lr_fraction=0.5)
    assert job.input_path.exists()
    final = job.process.wait(120)
    assert final.succeeded, job.process.stderr
    assert (final.done, final.total) == (4, 4)
    result = job.result()
    expected = kspace.degrade(study.frames, 0.5)
    np.testing.assert_allclose(result.study.frames, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(result.low_res.frames, expected, rtol=1e-5, atol=1e-4)
    assert result.uncertainty is None
    assert result.study.spacing == study.spacing and result.study.origin == study.origin
    np.testing.assert_array_equal(result.study.frame_times, study.frame_times)
    assert not job.workdir.exists()  # exchange files removed


def test_super_resolve_job_error_and_cancel_are_person_readable(tmp_path):
    job = SuperResolveJob(_study(), "perfgen", model=tmp_path / "missing.safetensors")
    job.process.wait(120)
    with pytest.raises(PerfGenError, match="missing.safetensors"):
        job.result()
    assert not job.workdir.exists()

    with pytest.raises(PerfGenError, match="LR fraction"):
        SuperResolveJob(_study(), "zeropad", lr_fraction=1.5)

    job = SuperResolveJob(_study(), "zeropad", python=sys.executable)
    job.cancel()
    with pytest.raises(Cancelled):
        job.result()
    assert not job.workdir.exists()
