"""Training checkpoints: one safetensors file per checkpoint, written atomically; no pickles.

Tensors: the generator (G with its saliency network S), its EMA, the discriminator, every optimizer's state, and the
torch RNG states.  The safetensors header's metadata holds the rest as JSON: step, data position, timings, best FID,
optimizer hyper-parameters, Python / NumPy RNG states, the config.  A run killed at any moment leaves either the
previous complete file or the new complete one (never a half-written file under a checkpoint's name).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cartoon.imageio import atomic_path

CKPT_PATTERN = re.compile(r"^ckpt-(\d+)\.safetensors$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"ckpt-{step:09d}.safetensors"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path), newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_PATTERN.match(p.name))]
    return sorted(found, reverse=True)


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{prefix}.{idx}.{key}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) \
                else torch.tensor(value)
    return tensors, sd["param_groups"]


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict, prefix: str, groups: list) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict, dict]:
    """(tensors, JSON-able) RNG states of torch (CPU and CUDA), Python and NumPy."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"python": [version, list(mt), gauss], "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, mt, gauss = meta["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))


def save_checkpoint(path: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    meta: dict) -> Path:
    tensors = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
    groups = {}
    for name, opt in optimizers.items():
        t, groups[name] = _optimizer_tensors(opt, f"optim.{name}")
        tensors.update(t)
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    header = {"meta": json.dumps(meta), "optim_groups": json.dumps(groups), "rng": json.dumps(rng_meta)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def read_meta(path: Path) -> dict:
    """The JSON metadata of a checkpoint (cheap: reads only the header)."""
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["meta"])


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    restore_rng: bool = True) -> dict:
    """Restore modules, optimizers and RNG states in place; return the metadata."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        header = f.metadata()
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    groups = json.loads(header["optim_groups"])
    for name, opt in optimizers.items():
        _load_optimizer(opt, tensors, f"optim.{name}", groups[name])
    if restore_rng:
        set_rng_state(tensors, json.loads(header["rng"]))
    return json.loads(header["meta"])


def load_latest(folder: Path, modules: dict, optimizers: dict, on_skip=None) -> tuple[Path, dict] | None:
    """Load the newest checkpoint that reads back into `modules` / `optimizers`: (its path, its meta), or None.
    A damaged file (a full disk, a killed copy) is skipped for the one before; `on_skip(path, error)` hears of it."""
    for _, path in list_checkpoints(folder):
        try:
            return path, load_checkpoint(path, modules, optimizers)
        except Exception as e:  # noqa: BLE001 - any unreadable file: fall back to the one before
            if on_skip is not None:
                on_skip(path, e)
    return None


def prune_checkpoints(folder: Path, keep: int) -> None:
    for _, path in list_checkpoints(folder)[keep:]:
        path.unlink(missing_ok=True)
