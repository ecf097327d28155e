"""A Trainer callback that stamps the start of training and the end of every optimizer step, shared
by the throughput benchmarks (run as scripts, so ``benchmarks/`` is on ``sys.path``)."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """``ends[0]`` is the start of training, ``ends[k]`` the end of step k, each a (wall, process
    CPU) time pair; on CUDA each stamp waits for the GPU first, so it times the work, not its launch."""

    def __init__(self, cuda: bool = False):
        self.cuda = cuda
        self.ends: list[tuple[float, float]] = []

    def _stamp(self) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends = [self._stamp()]

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(self._stamp())
