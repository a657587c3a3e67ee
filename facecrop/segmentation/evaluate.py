"""Mask IoU of an ONNX segmenter on held-out composites (unseen people on unseen scenes).

    python -m facecrop.segmentation.evaluate                      # the shipped weights/segmenter/segmenter.onnx
    python -m facecrop.segmentation.evaluate --model other.onnx --n 512
    python -m facecrop.segmentation.evaluate --augment hard    # the fine-tuning stage's harder composites
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import data


def mask_iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two boolean masks; two empty masks agree perfectly."""
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, target).sum() / union)


def held_out_set(n: int, seed: int = data.SPLIT_SEED, held_out: float = data.HELD_OUT_FRACTION,
                 augment: data.Augment = data.Augment()) -> data.CompositeDataset:
    split = data.make_split(seed=seed, held_out=held_out)
    return data.held_out_composites(data.load_cutouts(split.held_out_people),
                                    data.load_backgrounds(split.held_out_backgrounds), seed, n, augment)


def score(segmenter, dataset: data.CompositeDataset, batch: int = 16) -> dict:
    """Mean per-image IoU, pooled IoU (all pixels together) and the worst image's IoU at threshold 0.5."""
    ious, inter, union = [], 0, 0
    for start in range(0, len(dataset), batch):
        samples = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        for pred, (_, mask) in zip(segmenter.batch([s[0] for s in samples]), samples):
            p, t = pred >= 0.5, mask >= 0.5
            ious.append(mask_iou(p, t))
            inter += int(np.logical_and(p, t).sum())
            union += int(np.logical_or(p, t).sum())
    return dict(n=len(ious), mean_iou=float(np.mean(ious)), pooled_iou=inter / max(union, 1), min_iou=float(min(ious)))


def main(argv: list[str] | None = None) -> int:
    from ..segment import OnnxSegmenter

    p = argparse.ArgumentParser(prog="python -m facecrop.segmentation.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="ONNX segmenter (default: the shipped one)")
    p.add_argument("--n", type=int, default=512, help="number of held-out composites")
    p.add_argument("--seed", type=int, default=data.SPLIT_SEED)
    p.add_argument("--augment", choices=sorted(data.AUGMENTS), default="base")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    dataset = held_out_set(args.n, args.seed, augment=data.AUGMENTS[args.augment])
    result = score(OnnxSegmenter(args.model, threads=args.threads), dataset)
    print(f"held-out composites ({args.augment}): {result['n']}  mean IoU {result['mean_iou']:.4f}  pooled IoU "
          f"{result['pooled_iou']:.4f}  worst {result['min_iou']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
