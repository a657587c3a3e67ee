"""Ship a trained segmenter: its weights as safetensors and an ONNX graph (sigmoid included) for onnxruntime.

    python -m facecrop.segmentation.export runs/segmenter -o weights/segmenter

Reads RUN/model.safetensors (+ config in its metadata), writes OUT/model.safetensors (the same tensors, config in
the metadata) and OUT/segmenter.onnx: input "image" (N, 3, H, W) float32 RGB in [0, 1], H and W multiples of 32,
output "mask" (N, 1, H, W) person probability; metadata input_size=256.  The graph is checked against torch.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cartoon.errors import WeightsError
from cartoon.imageio import atomic_path

from .model import Segmenter, SegmenterConfig, SegmenterWithSigmoid

ONNX_NAME = "segmenter.onnx"
WEIGHTS_NAME = "model.safetensors"
INPUT_SIZE = 256


def load_segmenter(path: str | Path) -> Segmenter:
    """A `Segmenter` from a safetensors file written by train.py or this script (config in its metadata)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            config = SegmenterConfig.from_dict(json.loads(f.metadata()["config"]))
        state = load_file(str(path))
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise WeightsError(f"{path}: not a segmenter safetensors file ({e})") from None
    model = Segmenter(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # BatchNorm's num_batches_tracked counters are integers and not stored: nothing else may be missing.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(f"{path}: does not match the segmenter (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval()


def export(model: Segmenter, out_dir: str | Path, metadata: dict[str, str] | None = None, opset: int = 17) -> Path:
    import onnx
    import onnxruntime as ort

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(model.config.to_dict())})
    probe = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    onnx_path = out_dir / ONNX_NAME
    with atomic_path(onnx_path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axes = {0: "batch", 2: "height", 3: "width"}
            # The TorchScript exporter: one self-contained file (the dynamo one needs onnxscript).
            # The wrapper must be in eval mode too: export restores the wrapper's mode on everything inside it.
            torch.onnx.export(SegmenterWithSigmoid(model).eval(), (probe,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=["mask"],
                              dynamic_axes={"image": axes, "mask": axes}, do_constant_folding=True)
        graph = onnx.load(str(tmp))
        for key, value in {"input_size": str(INPUT_SIZE), **(metadata or {})}.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": probe.numpy()})[0]
        with torch.no_grad():
            want = torch.sigmoid(model(probe)).numpy()
        if not np.allclose(got, want, atol=1e-4):
            raise RuntimeError(f"ONNX and torch disagree by {np.abs(got - want).max():.2e}")
    return onnx_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facecrop.segmentation.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="training output folder (holds model.safetensors)")
    p.add_argument("-o", "--out", default="weights/segmenter")
    args = p.parse_args(argv)
    model = load_segmenter(Path(args.run) / WEIGHTS_NAME)
    meta = {"licence_note": "trained on face_photo (photo2cartoon trainA) and scene_photo: research use only"}
    print(export(model, args.out, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
