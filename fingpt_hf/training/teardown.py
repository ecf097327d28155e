"""How a training process ends once its outputs are written.

DeepSpeed ZeRO-3 keeps the model, its engine and their process groups referenced from its own
module globals (the forward-module stack in ``deepspeed.runtime.zero.parameter_offload``, an
``lru_cache`` on the parameter coordinator, per-module autograd classes), so
``destroy_process_group`` cannot free them: after ``recipes/sft.py``'s ``main`` has saved the
adapter and destroyed the groups, each rank of a two-process CPU run still holds two gloo process
groups and their four worker threads. They are torn down only by the interpreter's own teardown,
and that is where the ZeRO-3 test's rare abort came (a few times in some eighty runs: "terminate
called without an active exception", SIGABRT, after "adapter saved" on both ranks; no core dump
caught the thread, but a native thread that needs the GIL while the interpreter finalizes ends
that way). A rank of a multi-process run therefore runs its ``atexit`` handlers, flushes, and
ends with ``os._exit``, skipping that teardown; a single process (and any in-process caller, such
as a test) returns normally.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys


def end_training_process(exit_code: int) -> int:
    """Destroy the process groups; end a rank of a multi-process run here, with ``exit_code``.

    Returns ``exit_code`` in a single process. Call it only when every output is written: a rank
    of a distributed run does not return.
    """
    from accelerate import PartialState

    state = PartialState()
    distributed = state.num_processes > 1
    state.destroy_process_group()
    if not distributed:
        return exit_code
    # What a normal exit would do before the interpreter's teardown: atexit handlers (TensorBoard,
    # multiprocessing and compile-worker pools), logging handlers, the standard streams.
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(exit_code)
