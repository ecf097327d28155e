"""`fingpt-hf data stats` and `fingpt-hf data build`: inspect the benchmarks, build the mixture."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES
from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import atomic_write_json, ensure_writable_dir, replace_directory

REPORT_NAME = "mixture_report.json"
FORMATS = ("arrow", "parquet")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect the FinGPT benchmarks and build the training mixture")
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    stats = commands.add_parser("stats", help="rows, label distribution, mixture totals and train/test leakage")
    _add_data_dir(stats)
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(func=run_stats)

    build = commands.add_parser("build", help="rebuild FinGPT's training mixture and save it")
    _add_data_dir(build)
    build.add_argument("--output", required=True, help="folder to write (created atomically)")
    build.add_argument("--format", choices=FORMATS, default="arrow",
                       help="arrow: Dataset.save_to_disk; parquet: OUTPUT/train.parquet (default: arrow)")
    build.add_argument("--weights", default=None,
                       help="NAME=WEIGHT,... (default FinGPT's fpb=6,fiqa=21,tfns=2,nwgi=1); "
                            "the integer part repeats a split, a fraction adds a seeded sample")
    build.add_argument("--seed", type=int, default=42, help="shuffle and sampling seed (default 42)")
    build.add_argument("--max-samples", type=int, default=None, help="keep the first N rows after shuffling")
    build.add_argument("--on-missing", choices=("skip", "error"), default="skip",
                       help="what to do with a split the mirror lacks (NWGI train); default skip")
    build.add_argument("--exclude-validation", action="store_true",
                       help="leave each benchmark's validation rows (a seeded 10%% of train) out; default: "
                            "FinGPT's whole train splits")
    build.add_argument("--exclude-scored-texts", action="store_true",
                       help="also leave out train rows whose text is that of a test row (or, with "
                            "--exclude-validation, a validation row); default: kept, as FinGPT did")
    build.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    build.set_defaults(func=run_build)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="FinGPT data mirror (default $FINGPT_DATA_DIR; unset means the Hugging Face Hub)")


def run_stats(args: argparse.Namespace) -> int:
    from fingpt_hf.data.stats import collect_stats, format_stats

    stats = collect_stats(args.data_dir)
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def _mixture_config(args: argparse.Namespace):
    from fingpt_hf.data.mixture import MixtureConfig, parse_weights

    base = MixtureConfig.fingpt_default()
    kwargs = {"seed": args.seed, "on_missing": args.on_missing, "max_samples": args.max_samples,
              "exclude_validation": args.exclude_validation, "exclude_scored_texts": args.exclude_scored_texts}
    if args.weights:
        return MixtureConfig.from_weights(parse_weights(args.weights), **kwargs)
    return MixtureConfig(base.sources, **kwargs)


def _publish(tmp: Path, output: Path, overwrite: bool) -> None:
    """Move the finished temp folder into place; an existing OUTPUT is replaced only when asked."""
    if output.exists() and not overwrite:
        raise FinGPTError(f"--output {output} already exists; pass --overwrite to replace it")
    replace_directory(tmp, output)


def run_build(args: argparse.Namespace) -> int:
    import datasets

    from fingpt_hf.data.leakage import benchmark_leakage
    from fingpt_hf.data.mixture import build_mixture

    datasets.disable_progress_bars()
    output = Path(args.output).expanduser()
    if output.exists() and not args.overwrite:
        raise FinGPTError(f"--output {output} already exists; pass --overwrite to replace it")
    # Before building: the folder is written next to OUTPUT and renamed into place.
    ensure_writable_dir(output.parent, f"--output {output}: its folder")
    config = _mixture_config(args)
    mixture, report = build_mixture(config, args.data_dir)

    # Leakage of the benchmark test splits against the rows actually in the mixture (a fractional
    # weight may leave some out). Repeats are the weights at work, so train duplicates are not listed.
    train_sets: dict[str, list[str]] = {s.name: [] for s in report.sources if s.rows_out}
    for name, text in zip(mixture["dataset"], mixture["input"]):
        train_sets.setdefault(name, []).append(text)
    leakage = benchmark_leakage(args.data_dir, test_names=BENCHMARK_NAMES, train_sets=train_sets)
    leakage.train_duplicate_rows = {}

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        if args.format == "arrow":
            mixture.save_to_disk(str(tmp))
        else:
            mixture.to_parquet(str(tmp / "train.parquet"))
        atomic_write_json(tmp / REPORT_NAME, {"config": config.to_dict(), "format": args.format,
                                              **report.to_dict(), "leakage": leakage.to_dict()})
        _publish(tmp, output, args.overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    for line in report.summary_lines():
        print(line)
    print("leakage (benchmark test rows whose normalised text is in the mixture):")
    for line in leakage.lines():
        print(f"  {line}")
    print(f"saved {report.total_rows} rows ({args.format}) to {output}")
    return 0
