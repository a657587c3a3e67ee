"""Training throughput: images/second of full adversarial training steps (G + S + D + VGG19 content, EMA) on this
machine, for the paper recipe with the `lite` and `paper` generators and for cheaper variants.

    python benchmarks/bench_train.py                       # every variant, batch 8
    python benchmarks/bench_train.py --only lite-256 lite-128 --repeats 5 --threads 1

Each variant runs `Trainer.train_step` (the real step, adversarial phase) on one real batch from the shared data
(16 files per folder; caches built once under .cache/train), after warm-up steps.  It prints the median step time
over the repeats, images/second by wall clock, and images per CPU-second of the process times the thread count: on a
CPU shared with other jobs the wall clock is inflated by the others, the CPU time much less so.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see train/__main__.py)

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from train.config import load_config  # noqa: E402
from train.loop import Trainer  # noqa: E402

# name: (overrides, what it changes); "cpu-*" variants start from the CPU scene recipe in
# train/configs/ghibli-scene.yaml (every frame, no start weights), the others from the paper recipe in
# train/configs/ghibli.yaml
VARIANTS = {
    "cpu": ([], "the CPU scene recipe: wide-res-smooth, 128 crops, pixel + surface D (width 16), DiffAugment, "
                "structure term, auto precision"),
    "cpu-fp32": (["train.precision=fp32"], "the CPU scene recipe in fp32"),
    "cpu-d32": (["model.d_channels=32"], "the CPU scene recipe with CartoonGAN's D width 32"),
    "cpu-lite": (["model.generator=lite-res"], "the CPU scene recipe with the half-width residual generator"),
    "cpu-vgg3": (["loss.content_layer=block3_conv4"], "the CPU scene recipe with its VGG terms on conv3_4"),
    "lite-256": (["model.generator=lite"], "paper recipe, lite generator"),
    "paper-256": (["model.generator=paper"], "paper recipe, paper generator"),
    "lite-256-bf16": (["train.precision=bf16"], "bf16 autocast"),
    "lite-128": (["data.size=128"], "128x128 crops"),
    "lite-256-vgg3": (["loss.content_layer=block3_conv4"], "VARIANT: content on VGG conv3_4, not conv4_4"),
    "lite-256-vgghalf": (["loss.content_scale=0.5"], "VARIANT: VGG content on half-resolution images"),
    "lite-256-d16": (["model.d_channels=16"], "discriminator half as wide"),
    "lite-128-vgg3-d16": (["data.size=128", "loss.content_layer=block3_conv4", "model.d_channels=16"],
                          "VARIANT: 128 crops + conv3_4 + narrow D"),
    "lite-128-vgg2-d16": (["data.size=128", "loss.content_layer=block2_conv2", "model.d_channels=16"],
                          "VARIANT: 128 crops + conv2_2 (a much weaker content loss) + narrow D"),
}


def _trainer(name: str, batch_size: int, run_dir: str, init_epochs: int = 0) -> Trainer:
    overrides, _ = VARIANTS[name]
    config = "ghibli-scene.yaml" if name.startswith("cpu") else "ghibli.yaml"
    if name.startswith("cpu"):
        # every frame (the first 16 files need not be on the scenery list) and a fresh generator (any model.generator)
        overrides = ["data.cartoon_include=null", "data.cartoon_val_fraction=null", "train.init_weights=null",
                     *overrides]
    elif not any(o.startswith("model.generator=") for o in overrides):
        overrides = ["model.generator=lite", *overrides]
    cfg = load_config(REPO / "train" / "configs" / config, [
        *overrides, f"train.batch_size={batch_size}", f"train.init_epochs={init_epochs}", "train.device=cpu",
        "data.limit=16", "data.val_fraction=0", "data.num_workers=0", f"data.cache_dir={REPO / '.cache' / 'train'}",
        f"log.run_dir={run_dir}", "log.fid=false",
        f"data.photos={REPO.parent / 'shared/data/scene_photo/train'}",
        f"data.cartoons={REPO.parent / 'shared/data/style_ghibli'}"])
    trainer = Trainer(cfg, progress=False)
    trainer.sampler.set_position(0)
    return trainer


def _median_time(fn, warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return walls, cpus


def measure(name: str, batch_size: int, warmup: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = _trainer(name, batch_size, run_dir)
        batch = next(iter(trainer.loader))
        logs = trainer.train_step(batch)  # an adversarial step (D and G updated); counts as warm-up
        assert any(k.startswith("loss/d_") for k in logs)
        walls, cpus = _median_time(lambda: trainer.train_step(batch), max(0, warmup - 1), repeats)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        threads = torch.get_num_threads()
        return {"name": name, "wall": wall, "img_s": batch_size / wall, "img_cpu_s": batch_size / cpu * threads,
                "spread": (min(walls), max(walls)), "precision": str(trainer.dtype).replace("torch.", ""),
                "size": trainer.cfg.data.size}


def breakdown(name: str, batch_size: int, warmup: int, repeats: int) -> None:
    """Where a step's time goes: the generator alone, the init step (G + VGG content + saliency), the full step."""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = _trainer(name, batch_size, run_dir, init_epochs=1000)
        batch = next(iter(trainer.loader))
        photo = batch["photo"].contiguous(memory_format=trainer.memory_format)

        def generator_only():
            fake, sal = trainer.generator(photo)
            (fake.mean() + sal.mean()).backward()

        parts = {"G + S forward/backward": generator_only, "init step (+ VGG content, saliency, Adam)":
                 lambda: trainer.train_step(batch)}
        for label, fn in parts.items():
            walls, _ = _median_time(fn, warmup, repeats)
            print(f"| {name} | {label} | {statistics.median(walls):.2f} s |", flush=True)
        trainer.step = trainer.init_steps = 0
        walls, _ = _median_time(lambda: trainer.train_step(batch), warmup, repeats)
        print(f"| {name} | adversarial step (+ D step, D on the output) | {statistics.median(walls):.2f} s |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), help="variants to run (default: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--breakdown", action="store_true", help="time the parts of a step instead (first variant)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), AMX: {torch.cpu._is_amx_tile_supported()}, "
          f"batch {args.batch_size}, load average at start {os.getloadavg()[0]:.1f}")
    if args.breakdown:
        print("| variant | part | s/step (median) |\n|---|---|---|")
        breakdown((args.only or ["lite-256"])[0], args.batch_size, args.warmup, args.repeats)
        return 0
    print("| variant | what | size | precision | s/step (median) | min-max | img/s wall | img/s by CPU time |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.only or VARIANTS:
        r = measure(name, args.batch_size, args.warmup, args.repeats)
        print(f"| {name} | {VARIANTS[name][1]} | {r['size']} | {r['precision']} | {r['wall']:.2f} | "
              f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f} | {r['img_s']:.2f} | {r['img_cpu_s']:.2f} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
