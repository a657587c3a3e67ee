"""Inference numbers for the `paper` and `lite` generators: latency per backend, peak memory, sizes.

    python benchmarks/bench_inference.py                  # everything (the 4096x4096 paper run takes minutes)
    python benchmarks/bench_inference.py --configs lite --skip-4k

Latency: one 512x512 image, model only (no decoding), `--threads` CPU threads (default 2), median of `--repeat` runs
after warm-up.  Weights are seeded random: latency and memory do not depend on their values.
Peak RSS: a fresh process cartoonizes a 4096x4096 photo end to end through the engine (tiling, strength 1).
Needs the packages installed (`pip install -e .`, which requirements-dev.txt does).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cartoon import Generator, save_pretrained
from cartoon.export import export_onnx
from cartoon.network import count_parameters
from cartoon.runners import OnnxRunner, TorchRunner, cpu_has_fast_bf16


def median_latency(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def photo(size: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.BICUBIC))


def latency_table(name: str, folder: Path, size: int, threads: int, repeat: int) -> dict:
    from cartoon.tiling import to_network

    torch.set_num_threads(threads)
    x = to_network(photo(size))
    g = Generator(name)
    rows = {}
    fp32 = TorchRunner(g, device="cpu", precision="fp32")
    ref = fp32(x)[0]
    rows["torch fp32"] = median_latency(lambda: fp32(x), repeat)
    bf16 = TorchRunner(g, device="cpu", precision="bf16")
    rows["torch bf16 (autocast, channels_last)"] = median_latency(lambda: bf16(x), repeat)
    bf16_mad = float(np.abs(bf16(x)[0] - ref).mean() / 2 * 255)
    compiled = TorchRunner(g, device="cpu", precision="fp32", compile=True)
    t = time.perf_counter()
    compiled(x)
    compile_s = time.perf_counter() - t
    rows["torch.compile fp32"] = median_latency(lambda: compiled(x), repeat)
    if cpu_has_fast_bf16():
        compiled_bf16 = TorchRunner(g, device="cpu", precision="bf16", compile=True)
        rows["torch.compile bf16"] = median_latency(lambda: compiled_bf16(x), repeat)
    for label, quantized in (("onnxruntime fp32", False), ("onnxruntime int8 (dynamic)", True)):
        runner = OnnxRunner(folder, quantized=quantized, threads=threads)
        rows[label] = median_latency(lambda: runner(x), repeat)
        if quantized:
            int8_mad = float(np.abs(runner(x)[0] - ref).mean() / 2 * 255)
    return dict(latency_s=rows, bf16_mad_255=bf16_mad, int8_mad_255=int8_mad, compile_s=compile_s)


def peak_rss_4k(folder: Path, threads: int) -> dict:
    """Cartoonize a 4096x4096 photo in a fresh process; report its peak RSS and wall time."""
    code = f"""
import time, json, torch, numpy as np
from PIL import Image
from skimage import data
from cartoon import Cartoonizer
torch.set_num_threads({threads})
img = np.asarray(Image.fromarray(data.astronaut()).resize((4096, 4096), Image.Resampling.BICUBIC))
engine = Cartoonizer({str(folder)!r}, device="cpu")
t = time.perf_counter()
res = engine(img)
assert res.image.rgb.shape == (4096, 4096, 3)
# VmHWM, not ru_maxrss: Linux carries the forking parent's peak over into ru_maxrss across exec
hwm_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps(dict(seconds=time.perf_counter() - t, tile=engine.tile, precision=engine.precision,
                      peak_rss_mb=hwm_kb / 1024)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def gpu_throughput(name: str, size: int) -> dict:
    from cartoon.tiling import to_network

    rows = {}
    x = np.repeat(to_network(photo(size)), 8, axis=0)
    for precision in ("fp16", "bf16"):
        runner = TorchRunner(Generator(name), device="cuda", precision=precision)
        s = median_latency(lambda: (runner(x), torch.cuda.synchronize()), 5)
        rows[f"cuda {precision} batch 8"] = 8 / s
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["lite", "paper"])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--skip-4k", action="store_true")
    p.add_argument("--skip-latency", action="store_true", help="only sizes and the 4096x4096 memory run")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {args.threads} threads, AMX/AVX512-BF16: {cpu_has_fast_bf16()}, "
          f"CUDA: {torch.cuda.is_available()}")
    for name in args.configs:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            torch.manual_seed(0)
            g = Generator(name)
            save_pretrained(g, folder)
            export_onnx(g, folder)
            sizes = {f.name: f.stat().st_size / 2**20 for f in sorted(folder.iterdir())}
            print(f"\n== {name}: {count_parameters(g) / 1e6:.3f} M parameters; files (MiB): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in sizes.items()))
            table = None if args.skip_latency else latency_table(name, folder, args.size, args.threads, args.repeat)
            if table:
                for label, s in table["latency_s"].items():
                    print(f"  {label:<38} {s * 1000:8.1f} ms   ({args.size}x{args.size}, median of {args.repeat})")
                print(f"  bf16 vs fp32 mean abs diff: {table['bf16_mad_255']:.3f}/255 (limit 1/255); int8 vs fp32: "
                      f"{table['int8_mad_255']:.3f}/255; torch.compile first call {table['compile_s']:.0f} s")
                best = min(table["latency_s"].items(), key=lambda kv: kv[1])
                print(f"  best CPU path: {best[0]} {best[1] * 1000:.1f} ms")
            if torch.cuda.is_available():
                for label, ips in gpu_throughput(name, args.size).items():
                    print(f"  {label}: {ips:.1f} images/s")
            if not args.skip_4k:
                r = peak_rss_4k(folder, args.threads)
                print(f"  4096x4096 end to end: peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.1f} s "
                      f"(tile {r['tile']}, {r['precision']})")


if __name__ == "__main__":
    main()
