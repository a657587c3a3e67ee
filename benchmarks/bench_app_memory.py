"""The app's memory under load: RSS after each of several rounds of many concurrent /cartoonize calls.

    python benchmarks/bench_app_memory.py                          # 5 rounds of 50 calls, 1024 px photos
    python benchmarks/bench_app_memory.py --size 512 --rounds 5 --calls 50 --weights weights

`python app.py` is launched for real (shipped weights, or `--weights`: any folder CARTOON_WEIGHTS_DIR takes) with
its defaults (concurrency, queue), then each round makes `--calls` requests at once through gradio_client (from 8
clients, as 8 browser tabs would), waits for all, and reads the app's VmRSS (and thread count) from /proc. A real photo
(scikit-image's coffee, resized to `--size` px on the long side, a slightly different crop per call, so no two
uploads are the same file) goes through the app's defaults: auto mode, strength 1, longest side 1024, the default
tile. Bounded memory: RSS levels off after the first round instead of climbing with every round.
Extra environment variables for the app go through `--env NAME=VALUE` (e.g. MALLOC_ARENA_MAX=2 to try that).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def status(pid: int) -> tuple[float, int]:
    """The process's resident memory (MB) and thread count."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photos(folder: Path, size: int, n: int) -> list[Path]:
    """n crops of a real photo, each `size` px on the long side (different files: nothing is deduplicated)."""
    from PIL import Image
    from skimage import data

    src = Image.fromarray(data.coffee())  # 600 x 400
    out = []
    for i in range(n):
        crop = src.crop((i % 20, i % 13, 580 + i % 20, 387 + i % 13))
        scale = size / max(crop.size)
        img = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS)
        path = folder / f"photo{i:03d}.jpg"
        img.save(path, quality=92)
        out.append(path)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=50, help="concurrent /cartoonize calls per round")
    p.add_argument("--size", type=int, default=1024, help="long side of the uploaded photos (px)")
    p.add_argument("--weights", default=None, help="weights folder for the app (default: the shipped weights/)")
    p.add_argument("--style", default="ghibli")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the app's environment")
    args = p.parse_args()

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="bench-app-memory-"))
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", GRADIO_TEMP_DIR=str(work / "gradio"),
               TMPDIR=str(work))
    if args.weights:
        env["CARTOON_WEIGHTS_DIR"] = str(Path(args.weights).resolve())
    env.update(kv.split("=", 1) for kv in args.env)
    log = open(work / "server.log", "wb")
    app = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
                           cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if app.poll() is not None:
                sys.exit(f"app.py exited with {app.returncode}; see {work / 'server.log'}")
            try:
                with urllib.request.urlopen(url + "/gradio_api/info", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"app.py did not answer in 300 s; see {work / 'server.log'}")
                time.sleep(0.5)
        files = photos(work, args.size, args.calls)
        clients = [Client(url, verbose=False, httpx_kwargs={"timeout": 600}) for _ in range(8)]
        print(f"app.py, {args.calls} concurrent /cartoonize calls per round, {args.size} px photos, style "
              f"{args.style}, auto mode, longest side 1024, default tile; env {' '.join(args.env) or '-'}")
        print("RSS after start: {:.0f} MB, {} threads".format(*status(app.pid)))
        print("round  wall s  median s  RSS MB  threads")

        def call(i: int) -> float:
            t = time.perf_counter()
            clients[i % len(clients)].predict(handle_file(str(files[i])), args.style, "auto", 1.0, "photo", 1024,
                                              512, "auto", api_name="/cartoonize")
            return time.perf_counter() - t

        with ThreadPoolExecutor(args.calls) as pool:
            for r in range(1, args.rounds + 1):
                t0 = time.perf_counter()
                latencies = list(pool.map(call, range(args.calls)))
                wall = time.perf_counter() - t0
                time.sleep(2)  # let the server finish its responses
                rss, threads = status(app.pid)
                print(f"{r:5d}  {wall:6.1f}  {statistics.median(latencies):8.1f}  {rss:6.0f}  {threads:7d}", flush=True)
    finally:
        app.terminate()
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()
        log.close()


if __name__ == "__main__":
    main()
