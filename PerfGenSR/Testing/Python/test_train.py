import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import smooth_study

from PerfGenSRLib.defaults import TrainConfig
from PerfGenSRLib.distributed import Distributed
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.models import load_model
from PerfGenSRLib.objectives import DiffusionObjective
from PerfGenSRLib.train import load_checkpoint, train

CPU = torch.device("cpu")


def tiny_config(**changes) -> TrainConfig:
    settings = dict(
        preset="tiny",
        steps=6,
        batch=4,
        lr=2e-3,
        workers=0,
        val_every=3,
        checkpoint_every=3,
        log_every=1,
        val_pairs=4,
        val_steps=3,
    )
    return TrainConfig(**{**settings, **changes})


def fixed_loss(objective: DiffusionObjective, studies) -> float:
    """L1 noise loss on a fixed batch with fixed noise levels and noise (eval mode)."""
    from PerfGenSRLib.data import PairDataset

    pairs = [PairDataset(studies, augment=False)[i] for i in range(8)]
    lr, hr = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    generator = torch.Generator().manual_seed(1)
    level = torch.rand(8, generator=generator) * 0.9 + 0.05
    noise = torch.randn(hr.shape, generator=generator)
    objective.network.eval()
    with torch.no_grad():
        predicted = objective.network(lr, objective.schedule.add_noise(hr, noise, level), level)
    return float((predicted - noise).abs().mean())


def test_tiny_training_lowers_the_loss(tmp_path, studies):
    config = tiny_config(steps=40, val_every=1000, checkpoint_every=1000)
    torch.manual_seed(config.seed)
    before = fixed_loss(DiffusionObjective(config, Distributed(CPU)), studies[:2])
    trained = []
    train(
        lambda c, r: trained.append(DiffusionObjective(c, r)) or trained[-1],
        studies[:2],
        studies[2:],
        config,
        tmp_path / "run",
        CPU,
    )
    after = fixed_loss(trained[0], studies[:2])
    assert after < 0.8 * before
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and len(log) == 41 and "val_psnr" in log[0]
    model = load_model(tmp_path / "run" / "model.safetensors", "perfgen-unet")
    assert model.meta["training"]["step"] == 40 and model.meta["schedule"]["num_timesteps"] == 2000


def test_resume_continues_bit_for_bit(tmp_path, studies):
    train(DiffusionObjective, studies[:2], studies[2:], tiny_config(), tmp_path / "straight", CPU)
    train(DiffusionObjective, studies[:2], studies[2:], tiny_config(steps=3), tmp_path / "split", CPU)
    with pytest.raises(PerfGenError, match="add `resume` to continue"):
        train(DiffusionObjective, studies[:2], studies[2:], tiny_config(), tmp_path / "split", CPU)
    train(DiffusionObjective, studies[:2], studies[2:], tiny_config(), tmp_path / "split", CPU, resume=True)
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert straight["step"] == split["step"] == 6
    for part in ("network", "ema"):
        for key, value in straight["objective"][part].items():
            assert torch.equal(value, split["objective"][part][key]), (part, key)
    straight_log = (tmp_path / "straight" / "log.csv").read_text().splitlines()
    split_log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in straight_log] == [r.split(",")[:3] for r in split_log]


def test_two_process_ddp_ends_with_identical_weights(tmp_path):
    for seed in range(3):
        np.save(tmp_path / f"study{seed}.npy", smooth_study(seed).frames[:, 0])
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, torch
        from PerfGenSRLib.data import load_studies
        from PerfGenSRLib.defaults import TrainConfig
        from PerfGenSRLib.objectives import DiffusionObjective
        from PerfGenSRLib.train import train
        studies = load_studies([{str(tmp_path)!r}])
        config = TrainConfig(preset="tiny", steps=3, batch=2, lr=1e-3, workers=0, val_every=100,
                             checkpoint_every=100, log_every=1)
        made = []
        train(lambda c, r: made.append(DiffusionObjective(c, r)) or made[-1], studies[:2], [], config,
              {str(tmp_path / "run")!r}, torch.device("cpu"))
        torch.save(made[0].network.state_dict(), {str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.pt")
    """)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            str(script),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=240,
    )
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = DiffusionObjective(TrainConfig(preset="tiny"), Distributed(CPU)).network.state_dict()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert any(not torch.equal(rank0[k], initial[k]) for k in rank0)  # they did train
    assert (tmp_path / "run" / "checkpoint.pt").exists() and not (
        tmp_path / "run" / "checkpoint.pt.partial"
    ).exists()
