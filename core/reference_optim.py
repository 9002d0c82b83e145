"""The suite's optimizers, written out: SGD with momentum, Adam and AdamW as plain tensor operations.

They follow ``torch.optim``'s single-tensor (``foreach=False``) updates step for
step. Written out rather than imported because constructing the first
``torch.optim`` optimizer in a process imports ``torch._dynamo`` (about 4 s
here), which would cost the capture more than all its training steps; and
because the suite's arithmetic should not change when torch switches its
default optimizer kernels (foreach, fused). The team's own training steps
(``driftboard.Training``) use whatever optimizer they declare.

This module imports torch: only the capture path may import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class _Optimizer:
    def __init__(self, params: Iterable[torch.Tensor]) -> None:
        self.params = [p for p in params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


class SGD(_Optimizer):
    """``torch.optim.SGD(lr, momentum)``: buf = g on the first step, then buf·momentum + g; p -= lr·buf."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params)
        self.lr, self.momentum = lr, momentum
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if self.momentum:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = torch.clone(grad).detach()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-self.lr)


class Adam(_Optimizer):
    """``torch.optim.Adam`` (``AdamW`` with ``weight_decay``: decoupled, p·(1 − lr·wd) first), single-tensor path."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        bias_correction1 = 1 - beta1 ** self.steps
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** self.steps)
        step_size = self.lr / bias_correction1
        for p, exp_avg, exp_avg_sq in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            grad = p.grad
            if self.weight_decay:
                p.mul_(1 - self.lr * self.weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)
