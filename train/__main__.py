"""Train a cartoon style on unpaired photo and cartoon folders.

    python -m train --config train/configs/ghibli.yaml
    python -m train --config train/configs/ghibli.yaml train.batch_size=16 train.budget_minutes=25 --resume
    torchrun --nproc_per_node 4 -m train --config train/configs/shinkai.yaml
    python -m train --config train/configs/portrait.yaml --export-dir weights/portrait

Overrides are key=value (dotted paths such as loss.w_ori=0.3, or unique field names such as batch_size=4).
The run folder (log.run_dir, default runs/<name>) gets checkpoints, TensorBoard logs, sample grids and best/, the
best-by-FID EMA generator in the cartoon weights format.  Nothing is written to weights/ unless --export-dir says so.

Exit status: 0 done, 1 interrupted (a checkpoint was written; continue with --resume), 2 bad config or data.
"""
from __future__ import annotations

import argparse
import os
import sys

# Before torch loads: OpenMP threads that sleep instead of spinning.  On a CPU shared with other processes, spinning
# threads wait on descheduled siblings and a 2-thread training step ran 15x slower than a 1-thread one (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import ConfigError, dump_config, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML config, e.g. train/configs/ghibli.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder, if any")
    p.add_argument("--export-dir", default=None, help="at the end, write the best weights (cartoon format) here")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to TensorBoard)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.print_config:
            print(dump_config(cfg), end="")
            return 0
        from .loop import train
        result = train(cfg, resume=args.resume, export_dir=args.export_dir, progress=not args.no_progress)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun, rank 0 reports
        return 1 if result["interrupted"] else 0
    best = result.get("best")
    fid = (f", best at step {best['step']}: KID x10^3 {best['kid'] * 1e3:.2f}, FID {best['fid']:.2f}, "
           f"SSIM {best['ssim']:.3f}" if best else "")
    if result["interrupted"]:
        print(f"interrupted at step {result['step']}: checkpoint saved in {result['run_dir']}; continue with --resume",
              file=sys.stderr)
        return 1
    print(f"done: step {result['step']}{fid}; run folder {result['run_dir']}"
          + (f"; exported to {result['exported']}" if result.get("exported") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
