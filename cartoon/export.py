"""Export a generator to ONNX for the onnxruntime backend.

    python -m cartoon.export ghibli                 # a style name, a weights folder or a Hub repo id
    python -m cartoon.export weights/ghibli -o out/ --no-int8

Writes two graphs with dynamic batch, height and width (height and width must be multiples of 4; the engine pads):
  model.onnx        image -> cartoon, saliency, stat_0..stat_K   (the statistics feed tiled inference)
  model.tiles.onnx  image, stat_0..stat_K -> cartoon, saliency   (one tile, normalised with whole-image statistics)
and, unless --no-int8, their dynamically quantized int8 variants model.int8.onnx and model.tiles.int8.onnx.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import CartoonError
from .imageio import atomic_path
from .network import Generator


class _RecordingGraph(nn.Module):
    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, image):
        with self.generator.recording_stats() as stats:
            cartoon, saliency = self.generator(image)
        return (cartoon, saliency, *stats)


class _TileGraph(nn.Module):
    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, image, *stats):
        with self.generator.using_stats(stats):
            return self.generator(image)


def export_onnx(generator: Generator, out_dir: str | Path, int8: bool = True, opset: int = 17) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = generator.float().cpu().eval()
    n_stats = len(generator.stat_modules())
    stat_names = [f"stat_{i}" for i in range(n_stats)]
    image = torch.zeros(1, 3, 64, 64)
    with torch.no_grad(), generator.recording_stats() as stats:
        generator(image)
    stats = [s.clone() for s in stats]

    batch_hw = {0: "batch", 2: "height", 3: "width"}
    jobs = [
        ("model.onnx", _RecordingGraph(generator), (image,), ["image"], ["cartoon", "saliency", *stat_names],
         {"image": batch_hw, "cartoon": batch_hw, "saliency": batch_hw, **{n: {0: "batch"} for n in stat_names}}),
        ("model.tiles.onnx", _TileGraph(generator), (image, *stats), ["image", *stat_names], ["cartoon", "saliency"],
         {"image": batch_hw, "cartoon": batch_hw, "saliency": batch_hw, **{n: {0: "stat_batch"} for n in stat_names}}),
    ]
    written = []
    for name, module, args, inputs, outputs, axes in jobs:
        with atomic_path(out_dir / name) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The TorchScript exporter: the statistics live in module attributes set inside forward, which it
            # traces as plain dataflow; one self-contained file per graph.
            torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset, input_names=inputs,
                              output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
        written.append(out_dir / name)
        if int8:
            written.append(quantize_int8(out_dir / name))
    return written


def quantize_int8(path: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized on the fly by onnxruntime)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_name(path.name.replace(".onnx", ".int8.onnx"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a warning per tensor it leaves in float (padding indices)
    try:
        with atomic_path(target) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)
    return target


def main(argv: list[str] | None = None) -> int:
    from .registry import STYLES
    from .weights import from_pretrained

    p = argparse.ArgumentParser(prog="python -m cartoon.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="style name, weights folder or Hugging Face repo id")
    p.add_argument("-o", "--out", help="output folder (default: the weights folder)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 variants")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    try:
        style = STYLES.get(args.source)
        if style is not None:
            source, revision, filename = style.source()
            generator = from_pretrained(source, revision=revision, filename=filename)
            default_out = style.local_dir
        else:
            generator = from_pretrained(args.source)
            default_out = Path(args.source) if Path(args.source).is_dir() else Path("onnx") / args.source.replace("/", "--")
        for path in export_onnx(generator, args.out or default_out, int8=not args.no_int8, opset=args.opset):
            print(path)
    except CartoonError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
