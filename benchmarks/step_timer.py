"""Trainer callbacks for the throughput benchmarks (run as scripts, so ``benchmarks/`` is on ``sys.path``): one stamps
the start of training and the end of every optimizer step, one profiles chosen steps to say where their time went."""

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


# Ops whose self time is a matrix product (LoRA's, attention's and the frozen weights' alike), and where in their
# recorded input shapes the two factors are (``addmm(bias, a, b)`` and the like put them after the bias).
MATMUL_OPS = {"aten::mm": 0, "aten::bmm": 0, "aten::addmm": 1, "aten::addmm_": 1, "aten::baddbmm": 1}


def matmul_flops(name: str, shapes: list[list[int]]) -> int | None:
    """FLOPs of one call of a ``MATMUL_OPS`` op from its recorded input shapes: 2 x batch x m x k x n."""
    first = MATMUL_OPS[name]
    try:
        a, b = shapes[first], shapes[first + 1]
    except IndexError:
        return None
    if len(a) != len(b) or len(a) not in (2, 3) or a[-1] != b[-2]:
        return None
    return 2 * (a[0] if len(a) == 3 else 1) * a[-2] * a[-1] * b[-1]


class StepProfiler(TrainerCallback):
    """Records with ``torch.profiler`` the optimizer steps ``first + 1`` .. ``first + count`` (CPU ops, their shapes).

    Run after the timed steps, so the profiler's own cost never enters a timed figure. With inductor's
    ``cpp.enable_kernel_profile`` set before compiling, each fused C++ kernel of a compiled graph is an event of its
    own (named ``..._cpp_fused_...``) instead of part of the graph call's self time. (With inductor's ``cpp_wrapper``
    a compiled graph calls its matmuls from C++, outside the profiler's view: this split needs the Python wrapper,
    inductor's default.)"""

    def __init__(self, first: int, count: int):
        self.first, self.count = first, count
        self.profile: torch.profiler.profile | None = None
        self.wall = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.first and self.count:
            self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                  record_shapes=True)
            self.profile.__enter__()
            self.wall = time.perf_counter()
        elif self.profile is not None and state.global_step == self.first + self.count:
            self.wall = time.perf_counter() - self.wall
            self.profile.__exit__(None, None, None)

    def breakdown(self, top: int = 15) -> dict:
        """Where the profiled steps' time went, per step: self time of matmuls, of compiled (fused C++) kernels and
        of everything else, against the wall time; the ``top`` ops by self time; the matmuls' own rate (their FLOPs
        from their shapes over their time), overall and for every shape that ran, costliest first."""
        per_step = {"matmul": 0.0, "compiled_kernels": 0.0, "other": 0.0}
        events = self.profile.key_averages()
        for event in events:
            kind = ("matmul" if event.key in MATMUL_OPS else
                    "compiled_kernels" if "cpp_fused" in event.key else "other")
            per_step[kind] += event.self_cpu_time_total / 1e6 / self.count
        shapes = []
        for event in self.profile.key_averages(group_by_input_shape=True):
            if event.key in MATMUL_OPS:
                flops = matmul_flops(event.key, event.input_shapes)
                seconds = event.self_cpu_time_total / 1e6
                shapes.append({"name": event.key, "shapes": event.input_shapes[:MATMUL_OPS[event.key] + 2],
                               "calls_per_step": event.count / self.count, "self_s_per_step": seconds / self.count,
                               "gflops": None if flops is None or not seconds else flops * event.count / seconds / 1e9})
        known = [m for m in shapes if m["gflops"] is not None]
        known_s = sum(m["self_s_per_step"] for m in known)
        ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        return {
            "steps": self.count, "wall_s_per_step": self.wall / self.count,
            "self_s_per_step": per_step,
            "top_ops": [{"name": e.key, "calls_per_step": e.count / self.count,
                         "self_s_per_step": e.self_cpu_time_total / 1e6 / self.count} for e in ranked],
            # every matmul's FLOPs that ran, useful or not, over their time (shapes it cannot read left out of both)
            "matmul_gflops_ran": (sum(m["gflops"] * m["self_s_per_step"] for m in known) / known_s
                                  if known_s else None),
            "matmul_shapes": sorted(shapes, key=lambda m: m["self_s_per_step"], reverse=True),
        }
