"""The training loop end to end: learning, export, exact resume, a killed run, DDP on two CPU processes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cartoon.weights import from_pretrained
from train.checkpoint import list_checkpoints, read_meta
from train.config import load_config
from train.export import main as export_main
from train.loop import Trainer, train

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


pytestmark = pytest.mark.usefixtures("one_thread")


def _image(rng, h, w, cartoon: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([60 + 150 * yy, 80 + 120 * xx, 200 - 100 * yy], -1) + rng.uniform(-40, 40, 3)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * h
        disk = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r
        img[disk] = rng.uniform(0, 255, 3)
        if cartoon:  # flat colours with dark outlines
            edge = disk ^ ((np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < (r - 1.5) ** 2)
            img[edge] = 20
    if not cartoon:
        img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for kind, n in (("photos", 10), ("cartoons", 10)):
        (root / kind).mkdir()
        for i in range(n):
            Image.fromarray(_image(rng, 36, 40, kind == "cartoons")).save(root / kind / f"{kind[0]}{i:02d}.png")
    return root


def _overrides(folders: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"data.photos={folders / 'photos'}", f"data.cartoons={folders / 'cartoons'}", "data.size=32",
            "data.val_fraction=0.2", f"data.cache_dir={folders / 'cache'}", "data.sal_segments=30",
            "data.num_workers=0", "train.batch_size=2", "train.device=cpu", "log.fid=false", "log.samples=2",
            f"log.run_dir={run_dir}", "log.log_every=1", "model.generator=lite", *extra]


def test_content_init_learns(folders, tmp_path):
    """Content-only init on a handful of images: the content loss falls clearly (the generator learns to
    reproduce the photo's VGG features)."""
    cfg = load_config(None, _overrides(folders, tmp_path / "run", "train.init_epochs=100", "train.batch_size=4",
                                       "w_sali=0", "optim.lr_g=1e-3"))
    trainer = Trainer(cfg, progress=False)
    trainer.sampler.set_position(0)
    batch = next(iter(trainer.loader))
    losses = []
    for _ in range(24):
        losses.append(float(trainer.train_step(batch)["loss/content"]))
        trainer.step += 1
    assert "loss/d" not in trainer.train_step(batch)  # init phase: no adversary
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.5 * first, losses


def test_tiny_run_exports_best_by_fid_with_a_model_card(folders, tmp_path):
    run, export = tmp_path / "run", tmp_path / "weights"
    cfg = load_config(None, _overrides(folders, run, "train.init_epochs=1", "train.epochs=1", "log.fid=true",
                                       "log.eval_every=4", "log.ckpt_every=4", "log.keep_ckpt=2"))
    result = train(cfg, export_dir=export, progress=False)
    assert result["step"] == 8 and not result["interrupted"]  # 8 photos / batch 2 = 4 steps per epoch, 2 epochs
    chosen = result["best"]
    assert chosen is not None and result["best_step"] == chosen["step"] in (4, 8)
    assert 0 < chosen["ssim"] <= 1 and np.isfinite(chosen["kid"]) and chosen["kid_std"] >= 0 and chosen["fid"] > 0
    assert "texture_lines" in chosen and (chosen["texture_lines"] is None or chosen["texture_lines"] >= 0)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [8, 4]
    meta = read_meta(run / "checkpoints" / "ckpt-000000008.safetensors")
    assert meta["step"] == 8 and meta["best"] == chosen
    assert (run / "samples" / "step-000000008.png").is_file() and list((run / "tb").iterdir())
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [4, 8] and chosen in evals
    generator = from_pretrained(export)  # the cartoon/ weights format
    best = load_file(str(run / "checkpoints" / f"ckpt-{result['best_step']:09d}.safetensors"))
    assert all(torch.equal(v, best[f"ema.{k}"]) for k, v in generator.state_dict().items())
    card = (export / "README.md").read_text()
    for needed in (f"FID {chosen['fid']:.2f}", f"KID x10^3 {chosen['kid'] * 1e3:.2f}", f"SSIM to the input {chosen['ssim']:.3f}",
                   f"At step {result['best_step']}", "8 train / 2 validation",
                   "CPU-minutes", "Other generator terms: none", "block4_conv4", "0.25 x 0.96^"):
        assert needed in card, needed
    with torch.no_grad():
        y, s = generator(torch.zeros(1, 3, 32, 32))
    assert y.shape == (1, 3, 32, 32) and s.shape == (1, 1, 32, 32)
    # python -m train.export: the best export, or a checkpoint's EMA weights
    assert export_main([str(run), "--to", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (export / "model.safetensors").read_bytes()
    assert export_main([str(run), "--checkpoint", "latest", "--to", str(tmp_path / "last")]) == 0
    last = load_file(str(run / "checkpoints" / "ckpt-000000008.safetensors"))
    assert all(torch.equal(v, last[f"ema.{k}"]) for k, v in from_pretrained(tmp_path / "last").state_dict().items())
    assert "steps | 8 " in (tmp_path / "last" / "README.md").read_text()
    assert export_main([str(tmp_path / "nowhere"), "--to", str(tmp_path / "x")]) == 2


def _state(path: Path) -> dict:
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("rng.")}


def straight_and_resumed(folders: Path, tmp_path: Path, common: tuple[str, ...]) -> tuple[dict, dict]:
    """The step-4 checkpoints of a run of 4 straight steps (run_dir a) and of one stopped at 2 and resumed (b)."""
    train(load_config(None, _overrides(folders, tmp_path / "a", *common, "train.max_steps=4")), progress=False)
    train(load_config(None, _overrides(folders, tmp_path / "b", *common, "train.max_steps=2")), progress=False)
    train(load_config(None, _overrides(folders, tmp_path / "b", *common, "train.max_steps=4")), resume=True,
          progress=False)
    return (_state(tmp_path / "a" / "checkpoints" / "ckpt-000000004.safetensors"),
            _state(tmp_path / "b" / "checkpoints" / "ckpt-000000004.safetensors"))


def test_resume_continues_exactly(folders, tmp_path):
    """Stopping after 3 steps and resuming gives bit-identical weights, EMA and optimizer state to 6 straight steps
    (across the init -> adversarial switch at step 4), with an optional term that runs numpy inside the step (the
    structure term's SLIC painting)."""
    common = ("train.init_epochs=1", "log.ckpt_every=3", "log.eval_every=100", "loss.w_structure=1",
              "loss.superpixels=60")
    train(load_config(None, _overrides(folders, tmp_path / "a", *common, "train.max_steps=6")), progress=False)
    train(load_config(None, _overrides(folders, tmp_path / "b", *common, "train.max_steps=3")), progress=False)
    with pytest.raises(ValueError, match="--resume"):
        Trainer(load_config(None, _overrides(folders, tmp_path / "b", *common, "train.max_steps=6")), progress=False)
    train(load_config(None, _overrides(folders, tmp_path / "b", *common, "train.max_steps=6")), resume=True,
          progress=False)
    a = _state(tmp_path / "a" / "checkpoints" / "ckpt-000000006.safetensors")
    b = _state(tmp_path / "b" / "checkpoints" / "ckpt-000000006.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optim.d.") for k in a)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    # and the run did change the weights
    first = _state(tmp_path / "b" / "checkpoints" / "ckpt-000000003.safetensors")
    assert not torch.equal(first["discriminator.net.0.weight"], b["discriminator.net.0.weight"])


def test_edge_smoothed_fakes_are_weighted_by_w_d_smoothed(folders, tmp_path):
    """loss.w_d_smoothed: D's loss counts the edge-smoothed cartoons as fakes with this weight, and at 0 they are
    not shown to D at all (the loss does not depend on them)."""
    def d_loss(weight: float, smoothed_value: float | None) -> float:
        cfg = load_config(None, _overrides(folders, tmp_path / f"run{weight}", "train.init_epochs=0",
                                           f"loss.w_d_smoothed={weight}", "optim.lr_d=0", "optim.lr_g=0"))
        torch.manual_seed(0)
        trainer = Trainer(cfg, progress=False)
        trainer.sampler.set_position(0)
        batch = dict(next(iter(trainer.loader)))
        assert ("smoothed" in batch) == (weight > 0)  # at 0 neither built nor loaded
        if smoothed_value is not None:
            batch["smoothed"] = torch.full_like(batch["cartoon"], smoothed_value)
        torch.manual_seed(1)
        return float(trainer.train_step(batch)["loss/d_pixel"])

    assert d_loss(0, None) == pytest.approx(d_loss(0, 1.0))
    assert d_loss(1, None) != pytest.approx(d_loss(1, 1.0))
    with_smoothed, without = d_loss(1, -1.0), d_loss(0, -1.0)
    assert d_loss(2, -1.0) - without == pytest.approx(2 * (with_smoothed - without), rel=1e-4)


def test_feature_discriminator_learns_checkpoints_and_resumes_exactly(folders, tmp_path):
    """loss.w_adv_vgg: a D on VGG features learns to tell the cartoons from the outputs (G frozen: D's loss falls),
    with loss.w_adv=0 the pixel D is skipped; its weights and Adam state resume bit-exactly, and resuming the run
    without it is refused."""
    cfg = load_config(None, _overrides(folders, tmp_path / "fixed", "train.init_epochs=0", "loss.w_adv=0",
                                       "loss.w_adv_vgg=1", "model.feature_d_channels=8", "optim.lr_g=0",
                                       "optim.lr_s=0", "optim.lr_d=2e-3", "train.batch_size=4"))
    trainer = Trainer(cfg, progress=False)
    trainer.sampler.set_position(0)
    batch = next(iter(trainer.loader))
    logs = [trainer.train_step(batch) for _ in range(30)]
    assert "loss/d_pixel" not in logs[0] and "loss/g_pixel" not in logs[0]
    d = [float(x["loss/d_vgg"]) for x in logs]
    g = [float(x["loss/g_vgg"]) for x in logs]
    # D ends near real -> 1, fake -> 0, so G's term (fake - 1)^2 is near 1
    assert np.mean(d[-3:]) < 0.2 * np.mean(d[:3]) and np.mean(g[-3:]) > 0.7, (d, g)

    common = ("train.init_epochs=0", "loss.w_adv_vgg=1", "model.feature_d_channels=8", "model.diffaug=translation",
              "log.ckpt_every=2",
              "log.eval_every=100")
    a, b = straight_and_resumed(folders, tmp_path, common)
    assert any(k.startswith("feature_discriminator.") for k in a) and any(k.startswith("optim.df.") for k in a)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    with pytest.raises(ValueError, match="discriminators pixel .Discriminator., vgg .FeatureDiscriminator.; this config has pixel"):
        Trainer(load_config(None, _overrides(folders, tmp_path / "b", "train.init_epochs=0", "train.max_steps=6")),
                resume=True, progress=False)


def test_d_warmup_trains_only_the_discriminators_then_the_generator(folders, tmp_path):
    """train.d_warmup_steps: after the init phase the discriminators learn for that many steps while the generator,
    its EMA and the saliency network stay as they are; then the generator trains as before."""
    cfg = load_config(None, _overrides(folders, tmp_path / "run", "train.init_epochs=0", "train.d_warmup_steps=2",
                                       "optim.lr_d=1e-2"))
    trainer = Trainer(cfg, progress=False)
    trainer.sampler.set_position(0)
    batch = next(iter(trainer.loader))
    g0 = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    ema0 = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.objective.heads[0].net.state_dict().items()}

    def changed(model, before):
        return [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]

    for _ in range(2):
        logs = trainer.train_step(batch)
        trainer.step += 1
        assert "loss/d_pixel" in logs and "loss/g_total" not in logs
    assert changed(trainer.generator, g0) == [] and changed(trainer.ema, ema0) == []
    assert changed(trainer.objective.heads[0].net, d0)
    logs = trainer.train_step(batch)
    assert "loss/g_total" in logs and changed(trainer.generator, g0)


def test_init_weights_starts_the_generator_and_its_ema_from_a_weights_folder(folders, tmp_path):
    from cartoon.network import Generator, get_config
    from cartoon.weights import save_pretrained

    torch.manual_seed(7)
    start = Generator(get_config("lite"))
    save_pretrained(start, tmp_path / "start")
    trainer = Trainer(load_config(None, _overrides(folders, tmp_path / "run", f"train.init_weights={tmp_path / 'start'}")),
                      progress=False)
    saved = from_pretrained(tmp_path / "start").state_dict()
    for model in (trainer.generator, trainer.ema):
        assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="train.init_weights: .* model.generator"):
        Trainer(load_config(None, _overrides(folders, tmp_path / "wide", f"train.init_weights={tmp_path / 'start'}",
                                             "model.generator=wide-res")), progress=False)
    # a generator with U-Net skips starts from one without them: the skips at zero, everything else loaded
    save_pretrained(Generator(get_config("wide-res")), tmp_path / "wide-start")
    wide = from_pretrained(tmp_path / "wide-start").state_dict()
    unet = Trainer(load_config(None, _overrides(folders, tmp_path / "unet", f"train.init_weights={tmp_path / 'wide-start'}",
                                                "model.generator=wide-unet-smooth")), progress=False).generator.state_dict()
    assert all(torch.equal(unet[k], v) for k, v in wide.items())
    assert all(not v.any() for k, v in unet.items() if k.startswith("skips."))
    with pytest.raises(ValueError, match="train.init_weights"):
        Trainer(load_config(None, _overrides(folders, tmp_path / "none", f"train.init_weights={tmp_path / 'nowhere'}")),
                progress=False)


def _write_config(path: Path, overrides: list[str]) -> Path:
    lines = []
    for o in overrides:
        key, value = o.split("=", 1)
        section, leaf = key.split(".")
        lines.append((section, leaf, value))
    text = ""
    for section in dict.fromkeys(s for s, _, _ in lines):
        text += f"{section}:\n" + "".join(f"  {leaf}: {value}\n" for s, leaf, value in lines if s == section)
    path.write_text(text)
    return path


def _cli(*args, env=None):
    return [sys.executable, "-m", "train", *args], {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}


def _wait_for_checkpoints(run: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and len(list_checkpoints(run / "checkpoints")) < n and proc.poll() is None:
        time.sleep(0.05)


def test_interrupted_and_killed_runs_resume_to_completion(folders, tmp_path):
    run = tmp_path / "run"
    cfg = _write_config(tmp_path / "c.yaml", _overrides(folders, run, "train.init_epochs=1", "train.max_steps=16",
                                                        "log.ckpt_every=1", "log.eval_every=1000"))
    cmd, env = _cli("--config", str(cfg), "--no-progress", env={"OMP_NUM_THREADS": "1"})
    # SIGTERM (or Ctrl-C): the step in progress finishes, a checkpoint is written, exit status 1
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoints(run, 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    stopped_at = list_checkpoints(run / "checkpoints")[0][0]
    assert f"interrupted at step {stopped_at}" in err and "--resume" in err
    # SIGKILL: no chance to clean up, mid-step or mid-checkpoint
    proc = subprocess.Popen([*cmd, "--resume"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_checkpoints(run, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = list_checkpoints(run / "checkpoints")[0][0]
    assert stopped_at < killed_at < 16
    done = subprocess.run([*cmd, "--resume"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "done: step 16" in done.stdout
    assert read_meta(list_checkpoints(run / "checkpoints")[0][1])["step"] == 16


def test_budget_stops_the_session_with_a_checkpoint(folders, tmp_path):
    result = train(load_config(None, _overrides(folders, tmp_path / "run", "train.budget_minutes=0.0001",
                                                "log.ckpt_every=100")), progress=False)
    assert result["step"] == 1 and not result["interrupted"]
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [1]


def test_ddp_on_two_cpu_processes_matches_one_process(folders, tmp_path):
    """torchrun, gloo, 2 processes x batch 2 == 1 process x batch 4: same samples (DistributedSampler shards), averaged
    gradients (Adam's first moment after one step is 0.5 x the gradient), rank 0 alone writes."""
    # fp32: bf16 rounding (auto on CPUs with bf16 units) differs between one batch of 4 and two of 2
    common = ("train.init_epochs=0", "train.max_steps=1", "log.ckpt_every=1", "log.eval_every=100",
              "train.precision=fp32")
    ddp_cfg = _write_config(tmp_path / "ddp.yaml", _overrides(folders, tmp_path / "ddp", *common))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "train", "--config", str(ddp_cfg), "--no-progress"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("done: step 1") == 1  # rank 0 reports
    assert len(list((tmp_path / "ddp" / "tb").iterdir())) == 1
    ddp = _state(tmp_path / "ddp" / "checkpoints" / "ckpt-000000001.safetensors")
    assert read_meta(tmp_path / "ddp" / "checkpoints" / "ckpt-000000001.safetensors")["world_size"] == 2

    train(load_config(None, _overrides(folders, tmp_path / "one", *common, "train.batch_size=4")), progress=False)
    train(load_config(None, _overrides(folders, tmp_path / "half", *common)), progress=False)
    one = _state(tmp_path / "one" / "checkpoints" / "ckpt-000000001.safetensors")
    half = _state(tmp_path / "half" / "checkpoints" / "ckpt-000000001.safetensors")
    moments = [k for k in ddp if k.endswith(".exp_avg")]
    assert any(k.startswith("optim.d.") for k in moments) and any(k.startswith("optim.g.") for k in moments)
    flat = lambda s: torch.cat([s[k].flatten() for k in moments])  # noqa: E731
    err_one = (flat(ddp) - flat(one)).norm() / flat(one).norm()
    err_half = (flat(half) - flat(one)).norm() / flat(one).norm()
    assert err_one < 1e-4 < 0.05 < err_half, (err_one, err_half)


@pytest.mark.skipif(not (SHARED_DATA / "style_ghibli").is_dir(), reason="needs ../shared/data")
def test_tiny_config_runs_from_the_command_line(tmp_path):
    """The CI config: real photos and Ghibli frames, init + adversarial steps, FID, export; seconds on a CPU."""
    cmd, env = _cli("--config", "train/configs/tiny.yaml", f"log.run_dir={tmp_path / 'run'}",
                    f"data.cache_dir={tmp_path / 'cache'}", "train.max_steps=6", "--no-progress",
                    "--export-dir", str(tmp_path / "weights"))
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done: step 6, best at step " in out.stdout and "KID x10^3" in out.stdout
    assert from_pretrained(tmp_path / "weights").config.to_dict() == from_pretrained(tmp_path / "run" / "best").config.to_dict()


def test_a_run_keeps_its_generator_when_the_registry_changes_and_new_styles_need_no_registry(folders, tmp_path,
                                                                                               monkeypatch):
    """The run folder describes itself: a run of a registered style resumes and exports with the generator it was
    started with after cartoon/registry.py gives the style another config; a style the registry does not know
    trains when model.generator names the architecture."""
    import dataclasses as dc

    from cartoon.network import get_config
    from cartoon.registry import STYLES
    from train.config import ConfigError

    base = [o for o in _overrides(folders, tmp_path / "run", "train.init_epochs=0", "log.ckpt_every=2")
            if not o.startswith("model.generator")]
    registered = get_config(STYLES["ghibli"].config)
    train(load_config(None, base + ["train.max_steps=2"]), progress=False)
    assert f"generator: {STYLES['ghibli'].config}\n" in (tmp_path / "run" / "config.yaml").read_text()
    monkeypatch.setitem(STYLES, "ghibli", dc.replace(STYLES["ghibli"], config="lite"))
    trainer = Trainer(load_config(None, base + ["train.max_steps=4"]), resume=True, progress=False)
    assert trainer.generator.config == registered and trainer.step == 2
    trainer.fit()
    assert export_main([str(tmp_path / "run"), "--checkpoint", "latest", "--to", str(tmp_path / "out")]) == 0
    assert from_pretrained(tmp_path / "out").config == registered
    # asking for another generator than the run's is refused by name
    with pytest.raises(ConfigError, match="another generator than model.generator=lite"):
        Trainer(load_config(None, base + ["train.max_steps=6", "model.generator=lite"]), resume=True, progress=False)
    # a new style: no registry entry, the architecture named in the config
    new = [o for o in _overrides(folders, tmp_path / "new", "train.max_steps=1") if o != "model.generator=lite"]
    with pytest.raises(ConfigError, match="'watercolour' is not a registered style"):
        load_config(None, new + ["style=watercolour"])
    result = train(load_config(None, new + ["style=watercolour", "model.generator=lite"]), progress=False)
    assert result["step"] == 1
