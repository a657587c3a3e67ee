"""Train the person segmenter on composites (see data.py) on the CPU.

    python -m facecrop.segmentation.train --out runs/segmenter --phases 128x2000 256x200
    python -m facecrop.segmentation.train --out runs/segmenter-hard --init runs/segmenter/model.safetensors \
        --augment hard --lr 1.5e-3 --phases 128x600 256x150

Phases are SIZExSTEPS: most steps at low resolution (4x cheaper), a short last phase at the inference size.
The learning rate warms up, then follows one cosine over all phases.  Every --eval-every steps the model is scored
on held-out composites at 256; the best one is kept as OUT/model.safetensors (+ config.json) for export.py.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Subset

from cartoon.imageio import atomic_path

from . import data
from .evaluate import mask_iou
from .export import load_segmenter
from .model import Segmenter, SegmenterConfig, count_parameters


def parse_phase(text: str) -> tuple[int, int]:
    size, steps = text.lower().split("x")
    return int(size), int(steps)


def collate(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.stack([b[0] for b in batch])).permute(0, 3, 1, 2).float().div_(255)
    masks = torch.from_numpy(np.stack([b[1] for b in batch]))[:, None]
    return images, masks


def _worker_init(_):
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE for every pixel plus soft Dice, which weighs the boundary of small masks as much as that of large ones."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


@torch.no_grad()
def evaluate(model: Segmenter, samples: list[tuple[np.ndarray, np.ndarray]], batch: int = 16) -> float:
    model.eval()
    scores = []
    for i in range(0, len(samples), batch):
        x, y = collate(samples[i:i + batch])
        pred = model(x) > 0
        scores += [mask_iou(p[0].numpy(), t[0].numpy() >= 0.5) for p, t in zip(pred, y)]
    model.train()
    return float(np.mean(scores))


def save_weights(model: Segmenter, out: Path, info: dict) -> None:
    state = {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()
             if v.is_floating_point()}
    config = model.config.to_dict()
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(config), "training": json.dumps(info)})
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facecrop.segmentation.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/segmenter")
    p.add_argument("--faces", default=None, help="portraits on white (default ../shared/data/face_photo)")
    p.add_argument("--scenes", default=None, help="backgrounds (default ../shared/data/scene_photo/train)")
    p.add_argument("--phases", nargs="+", default=["128x2400", "256x300"], type=parse_phase)
    p.add_argument("--init", default=None, help="start from these weights (a model.safetensors of an earlier run)")
    p.add_argument("--augment", choices=sorted(data.AUGMENTS), default="base")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=data.SPLIT_SEED, help="split, composites and initialisation")
    p.add_argument("--held-out", type=float, default=data.HELD_OUT_FRACTION)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-samples", type=int, default=96)
    # One compute thread and one data worker: on a shared 2-core machine, two compute threads that wait on each
    # other at every op are slower than one.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    split = data.make_split(args.faces, args.scenes, args.seed, args.held_out)
    people = data.load_cutouts(split.train_people)
    backgrounds = data.load_backgrounds(split.train_backgrounds)
    held = data.held_out_composites(data.load_cutouts(split.held_out_people),
                                    data.load_backgrounds(split.held_out_backgrounds), args.seed, args.eval_samples)
    held_samples = [held[i] for i in range(len(held))]
    print(f"data: {len(people)} people, {len(backgrounds)} backgrounds for training; {len(split.held_out_people)} "
          f"people, {len(split.held_out_backgrounds)} backgrounds held out; loaded in {time.time() - t0:.0f}s",
          flush=True)

    model = load_segmenter(args.init).train() if args.init else Segmenter(SegmenterConfig())
    augment = data.AUGMENTS[args.augment]
    print(f"model: {count_parameters(model)} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total = sum(steps for _, steps in args.phases)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))

    best, step, start = -1.0, 0, 0
    t_train = time.time()
    with open(out / "log.jsonl", "a") as log:
        for size, steps in args.phases:
            stream = data.CompositeDataset(people, backgrounds, args.seed, size=size,
                                           length=(start + steps) * args.batch, augment=augment)
            loader = DataLoader(Subset(stream, range(start * args.batch, (start + steps) * args.batch)),
                                batch_size=args.batch, shuffle=False, num_workers=args.workers, collate_fn=collate,
                                worker_init_fn=_worker_init, prefetch_factor=4 if args.workers else None)
            losses = []
            for x, y in loader:
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                step += 1
                losses.append(loss.item())
                if step % args.eval_every == 0 or step == total:
                    iou = evaluate(model, held_samples)
                    record = dict(step=step, size=size, loss=float(np.mean(losses)), held_out_iou=iou,
                                  lr=schedule.get_last_lr()[0], minutes=(time.time() - t_train) / 60)
                    losses = []
                    # Keep the best by held-out IoU, but only among models that have seen the inference size.
                    if size == args.phases[-1][0] and iou > best:
                        best = iou
                        save_weights(model, out, record)
                        record["saved"] = True
                    print(json.dumps(record), flush=True)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
            start += steps
    if best < 0:
        save_weights(model, out, dict(step=step))
    print(f"done in {(time.time() - t_train) / 60:.1f} min; best held-out IoU {best:.4f}; weights in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
