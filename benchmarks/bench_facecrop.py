"""Portrait-mode latency on the CPU: segmenter per 256x256 crop, face detection, and the whole pipeline.

    python benchmarks/bench_facecrop.py                 # 2 threads, 30 timed runs after 5 warm-up runs
    python benchmarks/bench_facecrop.py --threads 1 --runs 50

Medians (and the 10th-90th percentile spread: other jobs share the cores) on skimage's astronaut (512x512, one
face).  The pipeline is timed with a cheap deterministic stylizer so that the numbers are facecrop's own; with
--generator lite the random-weights `lite` generator stylizes the crop, as a portrait style would.
Needs the packages installed (`pip install -e .`, which requirements-dev.txt does).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, ms: list[float]) -> None:
    q = np.percentile(ms, [10, 90])
    print(f"{name:<44} median {statistics.median(ms):7.1f} ms   (p10 {q[0]:.1f}, p90 {q[1]:.1f}, n={len(ms)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--generator", choices=["none", "lite"], default="none")
    args = p.parse_args()

    import torch
    from PIL import Image
    from skimage import data

    from facecrop import FacePipeline, OnnxSegmenter, RetinaFaceDetector

    torch.set_num_threads(args.threads)
    photo = data.astronaut()
    segmenter = OnnxSegmenter(threads=args.threads)
    detector = RetinaFaceDetector(threads=args.threads)
    pipe = FacePipeline(detector=detector, segmenter=None, threads=args.threads)
    (crop,) = pipe.crop(photo)
    print(f"onnxruntime, {args.threads} thread(s); astronaut 512x512, {len(pipe.detect(photo))} face")

    report("segmenter, one 256x256 crop", timed(lambda: segmenter(crop.image), args.runs, args.warmup))
    report("face detection (RetinaFace, 512x512)", timed(lambda: detector.detect(photo), args.runs, args.warmup))
    big = np.asarray(Image.fromarray(photo).resize((2048, 2048), Image.Resampling.BICUBIC))
    report("face detection (2048x2048, reduced to 640)", timed(lambda: detector.detect(big), args.runs, args.warmup))
    report("pipe.crop (detect + align + segment)", timed(lambda: pipe.crop(photo), args.runs, args.warmup))

    if args.generator == "lite":
        import cartoon

        torch.manual_seed(0)
        stylize = cartoon.Cartoonizer(cartoon.Generator("lite"), threads=args.threads)
        label = "pipe.run (+ lite generator, paste)"
    else:
        def stylize(x):
            return 255 - x
        label = "pipe.run (+ paste; stylizer excluded)"
    report(label, timed(lambda: pipe.run(photo, stylize), args.runs, args.warmup))


if __name__ == "__main__":
    main()
