"""The weights format: a folder (or Hugging Face Hub repo) with `model.safetensors`, `config.json`, `README.md`.

`config.json` holds the generator's architecture kwargs (`GeneratorConfig`); the safetensors file holds the state
dict.  Only safetensors is ever loaded: no pickles.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import WeightsError
from .imageio import atomic_path
from .network import Generator, GeneratorConfig
from .registry import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def save_pretrained(generator: Generator, folder: str | os.PathLike, card: str | None = None,
                    dtype: torch.dtype = torch.float32) -> Path:
    """Write `generator` in the weights format, each file atomically. `dtype=torch.float16` halves the size."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in generator.state_dict().items()}
    config = generator.config.to_dict()
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "config": json.dumps(config)})
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    if card is not None:
        with atomic_path(folder / CARD_NAME) as tmp:
            tmp.write_text(card)
    return folder


def resolve(source: str | os.PathLike, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
            filename: str = WEIGHTS_NAME) -> tuple[Path, Path]:
    """Return local paths of (weights, config) for a local folder or a Hub repo id (downloaded into the HF cache).

    With `HF_HUB_OFFLINE=1` only the cache is used.
    """
    path = Path(source)
    if path.is_dir():
        return _require(path / filename), _require(path / CONFIG_NAME)
    if path.is_file():
        raise WeightsError(f"{path}: give the folder that holds {WEIGHTS_NAME} and {CONFIG_NAME}, not a file")
    source = str(source)
    if not _REPO_ID.match(source):
        raise WeightsError(
            f"{source}: no such weights folder (it should hold {WEIGHTS_NAME} and {CONFIG_NAME}), and it is not a "
            "Hugging Face repo id of the form owner/name"
        )
    return _download(source, filename, revision, cache_dir), _download(source, CONFIG_NAME, revision, cache_dir)


def _require(p: Path) -> Path:
    if not p.is_file():
        hint = ""
        if p.name == WEIGHTS_NAME and any(p.parent.glob("*.p[th]*")):
            hint = " (pickle checkpoints are not loaded: export with `python -m train.export` to get safetensors)"
        raise WeightsError(f"{p}: file missing{hint}; a weights folder needs {WEIGHTS_NAME} and {CONFIG_NAME}")
    return p


def _download(repo_id: str, filename: str, revision: str | None, cache_dir) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    where = f"{repo_id}@{revision or 'main'}/{filename}"
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                    local_files_only=offline))
    except LocalEntryNotFoundError:
        how = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        raise WeightsError(f"{where}: not in the Hugging Face cache and {how}; download it once while online "
                           "(or unset HF_HUB_OFFLINE), or pass a local weights folder") from None
    except RepositoryNotFoundError:
        raise WeightsError(f"{repo_id}: no such Hugging Face repo (or it is private: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise WeightsError(f"{repo_id}: no revision {revision!r}") from None
    except EntryNotFoundError:
        raise WeightsError(f"{where}: the repo has no such file") from None
    except (HfHubHTTPError, OSError) as e:
        raise WeightsError(f"{where}: download failed ({e})") from None


def load_config(config_path: Path) -> GeneratorConfig:
    try:
        return GeneratorConfig.from_dict(json.loads(Path(config_path).read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{config_path}: not valid JSON ({e}); restore it from the weights' source") from None
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{config_path}: not a generator config ({e})") from None


def from_pretrained(source: str | os.PathLike, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    filename: str = WEIGHTS_NAME, device: str | torch.device = "cpu") -> Generator:
    """Build a `Generator` from a weights folder or Hub repo id, in eval mode."""
    weights_path, config_path = resolve(source, revision, cache_dir, filename)
    generator = Generator(load_config(config_path))
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{weights_path}: corrupt or not a safetensors file ({e}); download or export it again") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shapes = [k for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or bad_shapes:
        raise WeightsError(
            f"{weights_path}: does not match {config_path.name} (missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shapes {bad_shapes[:5]}); the two files come from different models"
        )
    generator.load_state_dict(state)
    return generator.to(device).eval()
