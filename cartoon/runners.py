"""Backends that run the generator on float32 NCHW arrays in [-1, 1]: torch (CPU/CUDA) and onnxruntime.

Both offer the same call: `runner(x, stats=None, record=False) -> (cartoon, saliency, stats or None)`, where `stats`
are the whole-image statistics of `Generator.recording_stats` (see `tiling.py`), and `device_type` ("cpu", "cuda").
torch is imported only by what needs it: onnxruntime alone runs `OnnxRunner` and `onnx_session`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .errors import CartoonError, WeightsError

if TYPE_CHECKING:
    import torch

    from .network import Generator

Stats = list  # whole-image statistics: list[np.ndarray], each (N, C, 1, 1) float32

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# bf16 on CPU is used only when it keeps the output within this mean absolute difference of fp32 (in 0..1 units).
BF16_MAX_MAD = 1 / 255


def cpu_has_fast_bf16() -> bool:
    """AMX (or AVX512-BF16) makes bf16 convolutions several times faster than fp32; without them bf16 is emulated
    and slower, so 'auto' stays in fp32."""
    import torch

    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def onnx_session(model: str | os.PathLike | bytes, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)):
    """An onnxruntime session for a model file (or its bytes) with `threads` intra-op threads that sleep when idle;
    `WeightsError` naming the file when the model cannot be loaded."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    # Spinning worker threads steal the cores from everything else in the process (the face detector and
    # segmenter, Gradio) and made shared-CPU runs 2-3x slower; blocking costs little per call.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        name = "in-memory model" if isinstance(model, bytes) else model
        raise WeightsError(f"{name}: cannot load the ONNX model ({e})") from None


def choose_dtype(precision: str, device: str | torch.device, *, cuda_fallback: torch.dtype | None = None,
                 bf16_ok: Callable[[], bool] | None = None) -> torch.dtype:
    """The compute (autocast) dtype for a precision preference ("auto", "fp32", "bf16", "fp16") on `device`: the
    one device/precision rule for inference and training.

    "auto": on CUDA bf16 where the GPU supports it, else `cuda_fallback` (None: fp16, for inference; training passes
    torch.float32, as fp16 would need a gradient scaler). On a CPU bf16 only where it has bf16 units (AMX /
    AVX512-BF16, `cpu_has_fast_bf16`; elsewhere bf16 is emulated and several times slower) and, when `bf16_ok` is
    given, only if it returns True (inference passes a quality probe); else fp32. fp16 runs on CUDA only.
    """
    import torch

    if precision not in PRECISIONS:
        raise CartoonError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        if device.type != "cuda":
            raise CartoonError("fp16 runs on CUDA only; use bf16 or fp32 on CPU")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else (cuda_fallback or torch.float16)
    if not cpu_has_fast_bf16():
        return torch.float32
    return torch.bfloat16 if bf16_ok is None or bf16_ok() else torch.float32


def resolve_device(device: str | torch.device | None) -> torch.device:
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise CartoonError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CartoonError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu")
    return device


class TorchRunner:
    def __init__(self, generator: Generator, device: str | torch.device | None = "auto", precision: str = "auto",
                 threads: int | None = None, compile: bool = False):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        # oneDNN's depthwise kernels are several times faster in NHWC (measured: `lite` 0.48 vs 0.58 s eager, 0.12 vs
        # 0.20 s compiled at 512x512 fp32); dense fp32 convs on CPU are faster in NCHW (`paper` 5.8 vs 6.8 s).
        depthwise = any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in generator.modules())
        self.channels_last = (self.device.type == "cuda" or precision == "bf16" or depthwise
                              or (precision == "auto" and cpu_has_fast_bf16()))
        if self.channels_last:
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.dtype = choose_dtype(precision, self.device, bf16_ok=self._bf16_keeps_quality)
        self.precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        self.model = torch.compile(self.generator, dynamic=False) if compile else self.generator

    @property
    def device_type(self) -> str:
        return self.device.type

    def _bf16_keeps_quality(self) -> bool:
        """Compare bf16 against fp32 on a fixed synthetic photo-like image once, at load time."""
        import torch

        g = torch.Generator().manual_seed(0)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
        probe = torch.stack([xx, yy, xx * yy]) * 0.8 + 0.1 * torch.randn(3, 128, 128, generator=g)
        probe = probe.clamp(-1, 1)[None].to(self.device, memory_format=torch.channels_last)
        with torch.inference_mode():
            ref = self.generator(probe)[0].float()
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                low = self.generator(probe)[0].float()
        return float((ref - low).abs().mean() / 2) <= BF16_MAX_MAD  # outputs span [-1, 1]: halve for 0..1 units

    def __call__(self, x: np.ndarray, stats: Sequence[np.ndarray] | None = None, record: bool = False):
        import torch

        xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        if self.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with torch.inference_mode(), autocast:
            if stats is not None:
                st = [torch.from_numpy(s).to(self.device) for s in stats]
                with self.generator.using_stats(st):
                    y, sal = self.model(xt)
                rec = None
            elif record:
                with self.generator.recording_stats() as recorded:
                    y, sal = self.generator(xt)  # eager: recording is a one-off, low-resolution pass
                rec = recorded
            else:
                y, sal = self.model(xt)
                rec = None
        out = (y.float().cpu().numpy(), sal.float().cpu().numpy())
        return out + ([r.float().cpu().numpy() for r in rec] if rec is not None else None,)


class OnnxRunner:
    """Runs an exported folder: `model.onnx` (x -> cartoon, saliency, *stats) and `model.tiles.onnx`
    ((x, *stats) -> cartoon, saliency), or their `.int8` variants."""

    def __init__(self, folder: str | os.PathLike, quantized: bool = False, threads: int | None = None,
                 device: str | None = "auto"):
        import onnxruntime as ort

        folder = Path(folder)
        suffix = ".int8.onnx" if quantized else ".onnx"
        paths = [folder / f"model{suffix}", folder / f"model.tiles{suffix}"]
        for p in paths:
            if not p.is_file():
                raise WeightsError(f"{p}: missing; export it with `python -m cartoon.export {folder}`")
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            raise CartoonError("onnxruntime here has no CUDA provider; install onnxruntime-gpu or use --device cpu")
        self.full, self.tiles = (onnx_session(p, threads, providers) for p in paths)
        self.stat_names = [i.name for i in self.tiles.get_inputs()[1:]]
        self.precision = "int8" if quantized else "fp32"
        self.device_type = "cuda" if providers[0].startswith("CUDA") else "cpu"

    def __call__(self, x: np.ndarray, stats: Sequence[np.ndarray] | None = None, record: bool = False):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if stats is not None:
            feed = {"image": x, **{n: np.ascontiguousarray(s, dtype=np.float32) for n, s in zip(self.stat_names, stats)}}
            y, sal = self.tiles.run(["cartoon", "saliency"], feed)
            return y, sal, None
        out = self.full.run(None, {"image": x})
        return out[0], out[1], (list(out[2:]) if record else None)
