#!/usr/bin/env python
"""Run the README's main command on this clone, time it, and record what it produced.

The README claims that its main command, on a fresh clone, reproduces the shipped default's seed 42
(same mixture, same adapter bytes, same test figures) inside the 30-minute budget. This script is how
that claim is checked and kept: it runs ``bash scripts/run_default.sh`` with ``OUT`` set, times the
whole command, and writes one JSON with the run's mixture hash, training time, CPU, package versions
and evaluation results; ``tests/test_readme_figures.py`` compares that JSON with the committed seed 42
and with the README's sentence about it.

    python benchmarks/reproduce_default.py --out /work/runs/repro_42 \\
        --json benchmarks/results/cpu_default_round13/reproduction/seed42_main_command.json

Run it alone on the machine (the time is part of the record). ``--recorded-wall-seconds`` records an
output directory the main command already wrote (timed by hand) instead of running it again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from fingpt_hf.io import atomic_write_json
from fingpt_hf.provenance import read_run_info
from select_cpu_recipe import trainer_runtime

ROOT = Path(__file__).resolve().parents[1]
MAIN_COMMAND = "bash scripts/run_default.sh"


def git_commit() -> str:
    """The short commit this clone is at (the record names the code it ran)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def run_main_command(out: Path) -> float:
    """Run the main command with ``OUT=out``; return its wall time in seconds."""
    started = time.monotonic()
    subprocess.run(["bash", "scripts/run_default.sh"], cwd=ROOT, env={**os.environ, "OUT": str(out)}, check=True)
    return time.monotonic() - started


def reproduction_record(out: Path, wall_seconds: float, what: str, command: str | None = None) -> dict[str, Any]:
    """What the main command (or ``command``, which writes the same layout) wrote to ``out``, in the committed
    reproduction layout: the adapter in ``out``, its test results in ``out/eval``."""
    run = read_run_info(out)
    if run is None or run.get("status") != "completed":
        raise SystemExit(f"{out}: no completed training run (fingpt_run.json with status 'completed')")
    results_path = out / "eval" / "results.json"
    if not results_path.is_file():
        raise SystemExit(f"{results_path}: missing; the main command's evaluation did not finish")
    return {
        "command": command or f"OUT={out} {MAIN_COMMAND}",
        "cpu": run["cpu"],
        "mixture_content_hash": run["mixture"]["content_hash"],
        "results": json.loads(results_path.read_text()),
        "train_runtime": trainer_runtime(run),
        "versions": run["versions"],
        "wall_seconds_whole_command": round(wall_seconds, 0),
        "what": what,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="OUT for the main command (its output directory)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the record")
    parser.add_argument("--recorded-wall-seconds", type=float, default=None,
                        help="record an existing OUT the main command wrote, timed at this many seconds")
    parser.add_argument("--what", default=None, help="how the run was made (default: the commit and today's date)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if args.recorded_wall_seconds is None:
        if out.exists():
            parser.error(f"--out {out} exists; the main command must write a fresh directory (or pass --recorded-wall-seconds)")
        wall = run_main_command(out)
    else:
        wall = args.recorded_wall_seconds
    what = args.what or (f"the README's main command ({MAIN_COMMAND}, OUT={out}) on a clone of {git_commit()}, "
                         f"alone on the machine, {date.today().isoformat()}")
    atomic_write_json(args.json, reproduction_record(out, wall, what))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
