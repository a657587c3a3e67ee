"""The training loop: init phase (content + saliency), then adversarial training; DDP-aware.

One process per GPU under `torchrun` (or one process on CPU / one GPU without it).  Rank 0 alone writes logs,
checkpoints, samples and exports; every rank reads the same checkpoint on resume.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from PIL import Image
from tqdm import tqdm

from cartoon.network import CONFIGS as GENERATOR_CONFIGS
from cartoon.network import Generator, GeneratorConfig, get_config
from cartoon.tiling import from_network
from cartoon.imageio import save_image
from cartoon.runners import choose_dtype
from cartoon.weights import from_pretrained, save_pretrained

from .checkpoint import checkpoint_path, list_checkpoints, load_latest, prune_checkpoints, read_meta, save_checkpoint
from .config import Config, ConfigError, dump_config
from .data import (EpochSampler, UnpairedDataset, edge_cache, file_digests, load_center_crops, make_splits, paired_files,
                   saliency_cache, steps_per_epoch)
from .export import copy_export, model_card
from .metrics import kid, ssim_gray, texture_lines
from .objective import Objective


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> tuple[Dist, torch.device]:
    d = Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
             int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    if device_pref == "auto":
        device = torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(device_pref)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("train.device: CUDA requested but no GPU is available; use train.device=cpu")
        if device.type == "cuda" and device.index is None:
            device = torch.device(f"cuda:{d.local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif d.local_world_size > 1:
        # processes sharing a CPU share its cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.local_world_size))
    if d.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


def default_workers(device: torch.device, d: Dist) -> int:
    if device.type == "cuda":
        return min(8, max(1, (os.cpu_count() or 1) // d.local_world_size - 1))
    return 0  # on CPU the data (a few decodes per step) is cheap next to the step; workers would take compute cores


def lerp_ema(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        e = list(ema.parameters())
        torch._foreach_lerp_(e, [p.detach() for p in model.parameters()], 1.0 - beta)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)


class Trainer:
    def __init__(self, cfg: Config, resume: bool = False, export_dir: str | os.PathLike | None = None,
                 progress: bool = True):
        self.cfg = cfg
        # the edge-smoothed cartoons are built, loaded and shown to the pixel D only when its loss counts them
        self.uses_smoothed = cfg.loss.w_adv > 0 and cfg.loss.w_d_smoothed > 0
        self.export_dir = Path(export_dir) if export_dir else None
        self.dist, self.device = init_distributed(cfg.train.device)
        self.main = self.dist.main
        self.progress = progress and self.main
        self.run_dir = cfg.run_dir
        self.ckpt_dir = self.run_dir / "checkpoints"
        t = cfg.train
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        # the inference rule, but no fp16 on GPUs without bf16: training would need a gradient scaler
        self.dtype = choose_dtype(t.precision, self.device, cuda_fallback=torch.float32)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        if list_checkpoints(self.ckpt_dir) and not resume:
            raise ConfigError(f"{self.run_dir} already holds checkpoints: pass --resume to continue that run, or set "
                              "log.run_dir (or name) for a new one")
        self._build_data()
        self.generator_spec = self._resolve_generator(resume)
        self._build_models()
        self.step = 0
        self.train_seconds = 0.0
        self.best: dict | None = None  # the evaluation whose weights are in run_dir/best
        self.last_eval: dict | None = None  # {"step", "fid", "kid", "kid_std", "kid_photos", "ssim"}
        self.resumed_from: Path | None = None
        if resume:
            self._resume()
        self.stop_requested = False
        self.session_seconds = 0.0  # this process's share of train_seconds: what train.budget_minutes limits
        self.val_photos: torch.Tensor | None = None  # loaded at the first evaluation
        self.fid = None
        self.fid_reference: np.ndarray | None = None
        self.kid_photos: tuple[float, float] | None = None  # the validation photos' own KID: the do-nothing baseline
        self.reference = None  # train.reference.StyleReference, with log.style_reference
        d = cfg.data  # validation images: whole images (centre crops of log.eval_size), not training crops
        size = cfg.log.eval_size or d.short_side or d.size
        self.eval_data = dataclasses.replace(d, size=size, short_side=max(d.short_side, size) if d.short_side else None)

    # ---- setup -------------------------------------------------------------------------------------------

    def _build_data(self) -> None:
        cfg, d = self.cfg, self.dist
        self.splits = s = make_splits(cfg.data)
        workers = cfg.data.num_workers if cfg.data.num_workers is not None else default_workers(self.device, d)
        cache_workers = max(1, (os.cpu_count() or 1) // d.local_world_size)
        photo_digests, cartoon_digests = file_digests(s.photos), file_digests(s.cartoons)
        caches = [(saliency_cache(cfg.data), s.photos, photo_digests)]
        if self.uses_smoothed:
            caches.append((edge_cache(cfg.data), s.cartoons, cartoon_digests))

        def build(rank: int, world: int) -> list[list[Path]]:
            from cartoon.errors import ImageError
            try:
                return [c.build(files, digests, cache_workers, rank, world, self.progress) for c, files, digests in caches]
            except ImageError as e:
                raise ConfigError(f"training data: {e}") from None

        build(d.rank, d.world_size)  # this rank's share
        if d.world_size > 1:
            dist.barrier()
        # whatever is still missing (a node-local cache folder)
        sal_paths, *rest = build(0, 1)
        edge_paths = rest[0] if self.uses_smoothed else None
        targets = paired_files(s.photos, s.cartoons, cfg.data.val_group) if cfg.data.target == "paired" else None
        self.dataset = UnpairedDataset(cfg.data, s.photos, sal_paths, s.cartoons, edge_paths, cfg.train.seed, targets)
        self.sampler = EpochSampler(self.dataset, d.world_size, d.rank, cfg.train.seed)
        # its own generator: each epoch's iterator draws a worker seed, which from the global RNG would shift the
        # DiffAugment stream after a resume (crops come from per-image seeds, not from it)
        self.loader = DataLoader(self.dataset, cfg.train.batch_size, sampler=self.sampler, num_workers=workers,
                                 generator=torch.Generator().manual_seed(cfg.train.seed),
                                 pin_memory=self.device.type == "cuda", drop_last=True,
                                 persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
        self.steps_per_epoch = steps_per_epoch(len(s.photos), cfg.train.batch_size, d.world_size)
        t = cfg.train
        self.init_steps = round(t.init_epochs * self.steps_per_epoch)
        total = math.ceil((t.init_epochs + t.epochs) * self.steps_per_epoch)
        self.total_steps = min(total, t.max_steps) if t.max_steps is not None else total
        if cfg.log.fid and self.main and (len(s.val_photos) < 2 or len(s.val_cartoons) < 2):
            raise ConfigError(f"FID needs at least 2 validation photos and cartoons (have {len(s.val_photos)} and "
                              f"{len(s.val_cartoons)}): raise data.val_fraction, or set log.fid=false")

    def _resolve_generator(self, resume: bool) -> GeneratorConfig:
        """The generator this run trains: a resumed run's own (from its newest checkpoint), whatever the registry
        says now; else model.generator or the registered style's, recorded in the config the run folder keeps."""
        cfg = self.cfg
        newest = list_checkpoints(self.ckpt_dir) if resume else []
        saved = get_config(read_meta(newest[0][1])["generator_config"]) if newest else None
        if cfg.model.generator is None:
            if saved is not None:
                cfg.model.generator = next((n for n, c in GENERATOR_CONFIGS.items() if c == saved), None)
                return saved
            cfg.model.generator = cfg.generator_config
        chosen = get_config(cfg.model.generator)
        if saved is not None and saved != chosen:
            raise ConfigError(f"{newest[0][1]}: was trained with another generator than model.generator="
                              f"{cfg.model.generator}; resume without model.generator (the run's own), or start a new run")
        return chosen

    def _build_models(self) -> None:
        cfg, dev = self.cfg, self.device
        self.generator = Generator(self.generator_spec).to(dev, memory_format=self.memory_format)
        if cfg.train.init_weights:
            self._load_init_weights(cfg.train.init_weights)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.objective = Objective(cfg, dev, self.dtype, self.memory_format, self.dist.world_size, self.init_steps,
                                   self.steps_per_epoch)
        o = cfg.optim
        betas = (o.beta1, o.beta2)
        s_params = list(self.generator.saliency.parameters())
        s_ids = {id(p) for p in s_params}
        self.opt_g = torch.optim.Adam([p for p in self.generator.parameters() if id(p) not in s_ids], o.lr_g, betas)
        self.opt_s = torch.optim.Adam(s_params, o.lr_s, betas)
        g = torch.compile(self.generator) if cfg.train.compile else self.generator
        if self.dist.world_size > 1:
            g = DDP(g, device_ids=[dev.index] if dev.type == "cuda" else None, broadcast_buffers=False)
        self.g_run = g

    def _load_init_weights(self, source: str) -> None:
        from cartoon.errors import WeightsError
        try:
            start = from_pretrained(source)
        except (WeightsError, OSError) as e:
            raise ConfigError(f"train.init_weights: {e}") from None
        if not self.generator.config.loads_from(start.config):
            raise ConfigError(f"train.init_weights: {source} is a {start.config.to_dict()} generator; the run trains "
                              f"{self.generator_spec.to_dict()} (set model.generator to match)")
        # a start without the skips leaves them at their zero init (loads_from allows no other difference)
        self.generator.load_state_dict(start.state_dict(), strict=start.config.skips == self.generator.config.skips)

    def _modules(self) -> dict:
        return {"generator": self.generator, "ema": self.ema} | self.objective.modules()

    def _optimizers(self) -> dict:
        return {"g": self.opt_g, "s": self.opt_s} | self.objective.optimizers()

    def _resume(self) -> None:
        def warn(path, e):
            if self.main:
                tqdm.write(f"warning: {path} could not be loaded ({type(e).__name__}: {e}); trying an older one")

        newest = list_checkpoints(self.ckpt_dir)
        if newest:
            self.objective.check_resume(read_meta(newest[0][1]).get("discriminators"), newest[0][1])
        found = load_latest(self.ckpt_dir, self._modules(), self._optimizers(), warn)
        if found is not None:
            path, meta = found
            self.step, self.train_seconds = meta["step"], meta["train_seconds"]
            self.best, self.last_eval = meta["best"], meta["last_eval"]
            self.resumed_from = path
            o = self.cfg.optim  # the config's hyper-parameters win over the checkpoint's (e.g. a changed lr)
            for opt, lr in ((self.opt_g, o.lr_g), (self.opt_s, o.lr_s)):
                for group in opt.param_groups:
                    group["lr"], group["betas"] = lr, (o.beta1, o.beta2)
            self.objective.set_lr(o.lr_d, (o.beta1, o.beta2))

    # ---- one step ----------------------------------------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16)

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        # on the device once, in the memory format every network here runs in: the objective uses the batch as it is
        batch = {k: v.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
                 for k, v in batch.items()}
        photo = batch["photo"]
        if self.init_steps <= self.step < self.init_steps + self.cfg.train.d_warmup_steps:
            with torch.no_grad(), self._autocast():
                fake, _ = self.g_run(photo)
            return self.objective.discriminator_steps(batch, fake)
        with self._autocast():
            fake, sal = self.g_run(photo)
        total, logs = self.objective.step(batch, fake, sal, self.step)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_s.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.opt_s.step()
        t = self.cfg.train
        beta = t.ema_decay * min(1.0, (self.step + 1) / max(1, t.ema_warmup))
        lerp_ema(self.ema, self.generator, beta)
        return logs

    # ---- evaluation, checkpoints, export ------------------------------------------------------------------

    @torch.no_grad()
    def _generate(self, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            y, s = self.ema(photos.to(self.device).contiguous(memory_format=self.memory_format))
        return y.float().clamp(-1, 1).cpu(), s.float().cpu()

    def _card_info(self) -> dict:
        s, d = self.splits, self.dist
        per_step = self.cfg.train.batch_size * d.world_size
        device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
        return {
            "step": self.step, "epoch": self.step / self.steps_per_epoch, "images_seen": self.step * per_step,
            "world_size": d.world_size, "n_photos": len(s.photos), "n_val_photos": len(s.val_photos),
            "n_cartoons": len(s.cartoons), "n_val_cartoons": len(s.val_cartoons),
            "device_minutes": self.train_seconds * d.world_size / 60.0, "device_kind": "GPU" if self.device.type == "cuda" else "CPU",
            "device_name": device_name, "precision": "bf16 autocast" if self.dtype == torch.bfloat16 else "fp32",
            "eval": self.last_eval if self.last_eval and self.last_eval["step"] == self.step else None,
            "ssim_floor": self.cfg.log.ssim_floor, "recipe": self.objective.describe(),
        }

    def save(self) -> Path:
        meta = {"step": self.step, "train_seconds": self.train_seconds, "best": self.best, "last_eval": self.last_eval,
                "generator_config": self.generator.config.to_dict(), "discriminators": self.objective.signature(),
                "world_size": self.dist.world_size, "card": self._card_info(), "config": self.cfg.to_dict()}
        path = save_checkpoint(checkpoint_path(self.ckpt_dir, self.step), self._modules(), self._optimizers(), meta)
        prune_checkpoints(self.ckpt_dir, self.cfg.log.keep_ckpt)
        return path

    def evaluate(self, writer) -> dict | None:
        """Sample grid; FID, KID and grayscale SSIM to the input of the EMA generator on the validation photos; the
        best export: lowest KID among evaluations whose SSIM is at least log.ssim_floor (a generator that wipes out
        the scene can match the cartoons' statistics better than one that keeps it: it must not win). Rank 0."""
        s, cfg = self.splits, self.cfg
        if self.val_photos is None:
            self.val_photos = load_center_crops(s.val_photos or s.photos[:cfg.log.samples], self.eval_data)
        bs, n = max(8, cfg.train.batch_size), cfg.log.samples
        photos = self.val_photos if cfg.log.fid else self.val_photos[:n]  # the metrics need them all, the grid n
        generated = [self._generate(b) for b in photos.split(bs)]
        outputs, saliency = torch.cat([y for y, _ in generated]), torch.cat([m for _, m in generated])
        rows = [np.concatenate([from_network(im) for im in t.numpy()], axis=1)
                for t in (self.val_photos[:n], outputs[:n], saliency[:n].expand(-1, 3, -1, -1) * 2 - 1)]
        grid = np.clip(np.concatenate(rows, axis=0), 0, 255).astype(np.uint8)
        writer.add_image("samples", grid, self.step, dataformats="HWC")
        save_image(Image.fromarray(grid), self.run_dir / "samples" / f"step-{self.step:09d}.png")
        if not cfg.log.fid:
            return None
        from .fid import FIDEvaluator, frechet_distance
        if self.fid is None:
            self.fid = FIDEvaluator(self.device, batch_size=bs)
            refs = load_center_crops(s.val_cartoons, self.eval_data)
            key = {"files": file_digests(s.val_cartoons), "size": self.eval_data.size, "short_side": cfg.data.short_side}
            self.fid_reference = self.fid.reference_features(refs, Path(cfg.data.cache_dir), key)
            self.photo_feats = self.fid.features(self.val_photos.split(bs))
            self.kid_photos = kid(self.photo_feats, self.fid_reference)
            if cfg.log.style_reference:
                from .reference import StyleReference
                self.reference = StyleReference(self.fid, s, cfg.data, self.eval_data.size)
        feats = self.fid.features(outputs.split(bs))
        pairs = [(np.round(from_network(a)).astype(np.uint8), np.round(from_network(b)).astype(np.uint8))
                 for a, b in zip(self.val_photos.numpy(), outputs.numpy())]
        ssim = float(np.mean([ssim_gray(a, b) for a, b in pairs]))
        lines = [v for v in (texture_lines(a, b) for a, b in pairs) if v is not None]
        k, k_std = kid(feats, self.fid_reference)
        result = {"step": self.step, "fid": frechet_distance(feats, self.fid_reference), "kid": k, "kid_std": k_std,
                  "kid_photos": self.kid_photos[0], "ssim": ssim,
                  "texture_lines": float(np.mean(lines)) if lines else None}
        if self.reference is not None:
            in_rgb, out_rgb = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
            result |= self.reference.numbers(in_rgb, out_rgb, self.photo_feats, feats)
            writer.add_scalar("eval/kid_ratio_to_floor", k / max(result["kid_floor"], 1e-12), self.step)
            writer.add_scalar("eval/frame_share", result["frame_share"], self.step)
            writer.add_scalar("eval/flat_share", result["look"]["flat_share"], self.step)
        self.last_eval = result
        writer.add_scalar("eval/fid", result["fid"], self.step)
        writer.add_scalar("eval/kid_x1e3", k * 1e3, self.step)
        ratio = k / max(self.kid_photos[0], 1e-12)
        writer.add_scalar("eval/kid_ratio_to_photos", ratio, self.step)
        writer.add_scalar("eval/ssim", ssim, self.step)
        is_best = ssim >= cfg.log.ssim_floor and (self.best is None or k < self.best["kid"])
        if is_best:
            self.best = result
            save_pretrained(self.ema, self.run_dir / "best", card=model_card(cfg, self.ema, self._card_info()))
        # the console and a plain-text log say how the run is going without TensorBoard
        line_text = f", texture lines {result['texture_lines']:.2f}" if lines else ""
        if self.reference is not None:
            line_text += (f", floor {result['kid_floor'] * 1e3:.1f}, called a frame {result['frame_share']:.2f} "
                          f"(photos {result['frame_share_photos']:.2f}), flat {result['look']['flat_share']:.3f} "
                          f"(photos {result['look_photos']['flat_share']:.3f}, frames "
                          f"{result['look_frames']['flat_share']:.3f})")
        tqdm.write(f"step {self.step}: FID {result['fid']:.1f}, KID x10^3 {k * 1e3:.1f} ± {k_std * 1e3:.1f} "
                   f"({ratio:.3f}x the photos'), SSIM {ssim:.3f}{line_text}"
                   f"{' (best)' if is_best else ''}")
        with open(self.run_dir / "evals.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")
        return result

    # ---- the loop ----------------------------------------------------------------------------------------

    def _should_stop(self) -> bool:
        budget = self.cfg.train.budget_minutes
        stop = self.stop_requested or (budget is not None and self.session_seconds >= budget * 60)
        if self.dist.world_size > 1:  # every rank stops at the same step
            flag = torch.tensor([float(stop)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def fit(self) -> dict:
        cfg, log = self.cfg, self.cfg.log
        writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))
            # purge_step drops events logged after the checkpoint by the interrupted run: no duplicated curves
            writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step if self.resumed_from else None)
        old_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} \
            if _in_main_thread() else {}
        bar = tqdm(total=self.total_steps, initial=self.step, desc=cfg.name, unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        sums: dict[str, torch.Tensor] = {}
        count, stopped = 0, False
        last = t_log = time.perf_counter()
        try:
            while self.step < self.total_steps and not stopped:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_position(epoch, position * cfg.train.batch_size)
                for batch in self.loader:
                    logs = self.train_step(batch)
                    self.step += 1
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0) + v
                    count += 1
                    bar.update()
                    now = time.perf_counter()
                    self.train_seconds += now - last  # all of it: steps, evaluations, checkpoints
                    self.session_seconds += now - last
                    last = now
                    stopped = self._should_stop()
                    done = stopped or self.step >= self.total_steps
                    if self.main and (self.step % log.log_every == 0 or done):
                        rate = count * cfg.train.batch_size * self.dist.world_size / max(now - t_log, 1e-9)
                        values = {k: float(v) / count for k, v in sums.items()}
                        for k, v in values.items():
                            writer.add_scalar(k, v, self.step)
                        writer.add_scalar("speed/images_per_second", rate, self.step)
                        bar.set_postfix({"img/s": f"{rate:.1f}", **{k.split("/")[-1]: f"{v:.3f}" for k, v in values.items()
                                                                    if k.startswith("loss/")}})
                        sums, count = {}, 0
                    # an interrupted run only checkpoints: it should exit quickly
                    if self.step % log.eval_every == 0 or (done and not self.stop_requested):
                        if self.main:
                            self.evaluate(writer)
                        if self.dist.world_size > 1:
                            dist.barrier()
                    if self.main and (self.step % log.ckpt_every == 0 or done):
                        self.save()
                    if count == 0:  # just logged: the next rate starts after this step's evaluation / checkpoint
                        t_log = time.perf_counter()
                    if done or self.step % self.steps_per_epoch == 0:
                        break
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        result = {"step": self.step, "best": self.best, "best_step": self.best["step"] if self.best else None,
                  "interrupted": self.stop_requested, "run_dir": str(self.run_dir)}
        if self.main and self.export_dir is not None:
            source = self.run_dir / "best"
            if not (source / "model.safetensors").is_file():
                # no FID: the final EMA weights are what there is
                save_pretrained(self.ema, self.run_dir / "final", card=model_card(cfg, self.ema, self._card_info()))
                source = self.run_dir / "final"
            copy_export(source, self.export_dir)
            result["exported"] = str(self.export_dir)
        return result


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def train(cfg: Config, resume: bool = False, export_dir=None, progress: bool = True) -> dict:
    try:
        return Trainer(cfg, resume=resume, export_dir=export_dir, progress=progress).fit()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
