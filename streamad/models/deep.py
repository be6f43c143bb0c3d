"""Shared machinery of the torch detectors: build from the input shape, one minibatch
training loop, scoring in batches, state as a flat dict of tensors.

A deep detector subclasses :class:`DeepDetector` and fills in

* ``build(shape)``: create ``self.nets`` (a dict of modules) for one sample's shape;
* ``train_step(x, y, opts)``: one optimisation step on a batch -> dict of losses;
* ``score_batch(x)``: dict of (B,) score tensors, higher = more anomalous;

and optionally ``optimizers()``, ``before_training`` (e.g. pre-training an autoencoder,
placing a hypersphere centre) and ``after_training`` (e.g. mixture statistics). Extra
fitted tensors go in ``self.buffers`` and are saved with the nets.

The loop draws batches from per-epoch permutations of a seeded generator; ``steps``
(when set) overrides ``epochs``; labelled anomalies (y == 1) are kept or dropped by the
detector's ``labels`` policy, and ``balance`` detectors fill half of every batch with
them. Non-finite losses stop training with a one-line ``TrainingError``. With
``checkpoint`` the loop state (nets, optimisers, generator, batch order) is written
every ``checkpoint_every`` steps and a rerun resumes from it bit for bit.
"""
from __future__ import annotations

import math
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from streamad.models.base import (
    Detector,
    Progress,
    TrainingError,
    batched,
    check_layout,
)
from streamad.models.blocks import init_nets

TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 20, "steps": None, "batch_size": 64, "lr": 1e-4,
                                  "weight_decay": 0.0, "max_seconds": None}

StepFn = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.optim.Optimizer]], dict[str, float]]


class Batches:
    """Index batches from per-epoch permutations; with ``balance`` and labelled anomalies,
    half of each batch is drawn (with replacement) from the anomalies."""

    def __init__(self, y: torch.Tensor, batch_size: int, gen: torch.Generator, balance: bool):
        self.gen = gen
        self.anom = torch.nonzero(y.cpu() == 1).flatten()
        split = balance and len(self.anom) > 0
        self.pool = torch.nonzero(y.cpu() == 0).flatten() if split else torch.arange(len(y))
        self.n_anom = batch_size // 2 if split else 0
        self.bs = max(1, min(batch_size - self.n_anom, len(self.pool)))
        self.perm = torch.zeros(0, dtype=torch.int64)
        self.pos = 0

    @property
    def per_epoch(self) -> int:
        return max(1, len(self.pool) // self.bs)

    def next(self) -> torch.Tensor:
        if self.pos + self.bs > len(self.perm):
            self.perm, self.pos = self.pool[torch.randperm(len(self.pool), generator=self.gen)], 0
        idx = self.perm[self.pos:self.pos + self.bs]
        self.pos += self.bs
        if self.n_anom:
            idx = torch.cat([idx, self.anom[torch.randint(len(self.anom), (self.n_anom,), generator=self.gen)]])
        return idx


class EMA:
    """Exponential moving average of the parameters, used for inference (as the ALAD / AnoGAN
    authors' TensorFlow code: ``ExponentialMovingAverage`` over the trainable variables), with
    TensorFlow's warm-up: the decay after n updates is min(decay, (1 + n) / (10 + n)), so a short
    run is not dominated by the initial weights. Buffers (batch-norm statistics, spectral-norm
    power-iteration vectors) are not averaged: averaging unit vectors shrinks them and would
    inflate spectrally normalised weights."""

    def __init__(self, nets: dict[str, nn.Module], decay: float):
        self.nets, self.decay, self.n = nets, decay, 0
        self.shadow = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in nets.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.n += 1
        decay = min(self.decay, (1 + self.n) / (10 + self.n))
        for k, m in self.nets.items():
            for n, p in m.named_parameters():
                self.shadow[k][n].mul_(decay).add_(p.detach(), alpha=1 - decay)

    @torch.no_grad()
    def copy_to(self) -> None:
        for k, m in self.nets.items():
            params = dict(m.named_parameters())
            for n, s in self.shadow[k].items():
                params[n].copy_(s)


class DeepDetector(Detector):
    init_fn: ClassVar[Callable[[nn.Module], None] | None] = staticmethod(init_nets)
    balance: ClassVar[bool] = False
    score_needs_grad: ClassVar[bool] = False
    score_batch_size: ClassVar[int] = 1024
    checkpoint_every: ClassVar[int] = 500

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.shape: tuple[int, ...] | None = None
        self.nets: dict[str, nn.Module] = {}
        self.buffers: dict[str, torch.Tensor] = {}

    # -- hooks --------------------------------------------------------------------
    @abstractmethod
    def build(self, shape: tuple[int, ...]) -> None:
        ...

    @abstractmethod
    def train_step(self, x: torch.Tensor, y: torch.Tensor, opts: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        ...

    @abstractmethod
    def score_batch(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"all": self.adam(*self.nets)}

    def before_training(self, X: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                        progress: Progress | None) -> None:
        pass

    def after_training(self, X: torch.Tensor, y: torch.Tensor) -> None:
        pass

    # -- helpers for subclasses -----------------------------------------------------
    def adam(self, *names: str, lr: float | None = None, betas=(0.9, 0.999)) -> torch.optim.Optimizer:
        params = [p for k in names for p in self.nets[k].parameters()]
        return torch.optim.Adam(params, lr=lr or self.params["lr"], betas=betas,
                                weight_decay=self.params["weight_decay"])

    def total_steps(self, batches: Batches) -> int:
        p = self.params
        return int(p["steps"]) if p["steps"] else int(p["epochs"]) * batches.per_epoch

    def _make(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.nets, self.buffers = {}, {}
        self.build(self.shape)
        for n in self.nets.values():
            n.to(self.device)

    def set_mode(self, train: bool) -> None:
        for n in self.nets.values():
            n.train(train)

    # -- training -------------------------------------------------------------------
    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "DeepDetector":
        X, y = self.training_rows(X, y)
        torch.manual_seed(seed)
        self._make(tuple(X.shape[1:]))
        if self.init_fn is not None:
            for n in self.nets.values():
                n.apply(self.init_fn)
        X, y = X.to(self.device), y.to(self.device)
        gen = torch.Generator().manual_seed(seed)
        self.before_training(X, y, gen, progress)
        self.run_loop(X, y, gen, self.optimizers(), self.train_step, progress, checkpoint)
        self.set_mode(False)
        with torch.no_grad():
            self.after_training(X, y)
        return self

    def run_loop(self, X: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                 opts: dict[str, torch.optim.Optimizer], step_fn: StepFn, progress: Progress | None,
                 checkpoint: Path | None = None, steps: int | None = None) -> None:
        p = self.params
        batches = Batches(y, p["batch_size"], gen, self.balance)
        total = steps if steps is not None else self.total_steps(batches)
        ema = EMA(self.nets, float(p["ema"])) if p.get("ema") else None
        start = self._resume(checkpoint, len(X), opts, gen, batches, ema) if checkpoint else 0
        t0 = time.monotonic()
        self.set_mode(True)
        for step in range(start, total):
            idx = batches.next()
            losses = step_fn(X[idx], y[idx], opts)
            bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
            if bad:
                raise TrainingError(f"{self.name}: training diverged at step {step + 1}: "
                                    + ", ".join(f"{k}={v}" for k, v in bad.items())
                                    + f" (lower model.params.lr, now {p['lr']})")
            if ema is not None:
                ema.update()
            if progress:
                progress(step + 1, total, losses)
            if checkpoint is not None and (step + 1) % self.checkpoint_every == 0 and step + 1 < total:
                self._save_checkpoint(checkpoint, step + 1, len(X), opts, gen, batches, ema)
            if p["max_seconds"] and time.monotonic() - t0 > p["max_seconds"]:
                break
        if ema is not None:
            ema.copy_to()
        if checkpoint is not None and checkpoint.exists():
            checkpoint.unlink()

    def _save_checkpoint(self, path: Path, step: int, n: int, opts, gen, batches: Batches, ema) -> None:
        ck = {"step": step, "n_train": n, "nets": {k: v.state_dict() for k, v in self.nets.items()},
              "opts": {k: o.state_dict() for k, o in opts.items()}, "gen": gen.get_state(),
              "torch_rng": torch.get_rng_state(), "perm": batches.perm, "pos": batches.pos,
              "buffers": dict(self.buffers), "ema": ema.shadow if ema else {}, "ema_n": ema.n if ema else 0}
        tmp = path.with_suffix(".tmp")
        torch.save(ck, tmp)
        tmp.replace(path)

    def _resume(self, path: Path, n: int, opts, gen, batches: Batches, ema) -> int:
        if not path.exists():
            return 0
        ck = torch.load(path, weights_only=True)
        if ck.get("n_train") != n:
            return 0
        for k, m in self.nets.items():
            m.load_state_dict(ck["nets"][k])
        for k, o in opts.items():
            o.load_state_dict(ck["opts"][k])
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        batches.perm, batches.pos = ck["perm"], int(ck["pos"])
        self.buffers.update(ck["buffers"])
        if ema is not None:
            ema.shadow, ema.n = ck["ema"], int(ck["ema_n"])
        return int(ck["step"])

    # -- scoring ----------------------------------------------------------------------
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        if not self.nets:
            raise TrainingError(f"{self.name}: not fitted")
        check_layout(X, self.name, self.input)
        self.set_mode(False)
        out: dict[str, list[torch.Tensor]] = {}
        for xb in batched(X, self.score_batch_size):
            xb = xb.to(self.device)
            with torch.set_grad_enabled(self.score_needs_grad):
                comps = self.score_batch(xb)
            for k, v in comps.items():
                out.setdefault(k, []).append(v.detach().double().cpu())
        return {k: torch.cat(v).numpy() for k, v in out.items()}

    # -- persistence --------------------------------------------------------------------
    def to(self, device):
        super().to(device)
        for n in self.nets.values():
            n.to(self.device)
        self.buffers = {k: v.to(self.device) for k, v in self.buffers.items()}
        return self

    def state(self) -> dict[str, torch.Tensor]:
        s: dict[str, torch.Tensor] = {"shape": torch.tensor(self.shape, dtype=torch.int64)}
        for k, n in self.nets.items():
            for name, t in n.state_dict().items():
                s[f"{k}.{name}"] = t.detach().cpu().clone()
        s.update({f"buf.{k}": v.detach().cpu().clone() for k, v in self.buffers.items()})
        return s

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self._make(tuple(int(v) for v in state["shape"].tolist()))
        for k, n in self.nets.items():
            n.load_state_dict({name[len(k) + 1:]: t for name, t in state.items() if name.startswith(k + ".")})
        self.buffers = {k[4:]: v.to(self.device) for k, v in state.items() if k.startswith("buf.")}
        self.set_mode(False)
