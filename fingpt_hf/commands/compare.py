"""`fingpt-hf compare` and `fingpt-hf leaderboard`: our results next to published numbers."""

from __future__ import annotations

import argparse
import sys

from fingpt_hf.evaluation.compare import FORMATS, METRICS, render_comparison
from fingpt_hf.evaluation.leaderboard import MEAN, render_leaderboard
from fingpt_hf.io import atomic_write_text, ensure_writable_file


def register(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="show results side by side with FinGPT's published numbers",
        description="Print runs (results.json files or eval output directories) next to the published "
                    "FinGPT, FinBERT, GPT-4 and seed rows. Values are x100.",
    )
    compare.add_argument("results", nargs="*", metavar="RESULTS",
                         help="results.json, a data set's result.json, or an eval output directory")
    compare.add_argument("--metric", action="append", choices=METRICS, default=None,
                         help="metric column(s) to show; repeat for several (default: all three)")
    compare.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default: markdown)")
    compare.add_argument("--no-published", action="store_true", help="leave out the published rows")
    compare.add_argument("--published-file", default=None,
                         help="YAML file of published rows (default: the one shipped with fingpt-hf)")
    compare.add_argument("--output", default=None, metavar="FILE", help="write the table here instead of stdout")
    compare.set_defaults(func=run_compare)

    board = subparsers.add_parser(
        "leaderboard",
        help="rank every results.json under a directory",
        description="Find every results.json under DIR (recursively) and rank the runs, by default by the "
                    "mean F1 weighted over the benchmarks each run has (a run missing a benchmark is averaged "
                    "over the ones it has; the Benchmarks column shows its coverage).",
    )
    board.add_argument("directory", metavar="DIR", help="directory to search for results.json files")
    board.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default: markdown)")
    board.add_argument("--metric", choices=METRICS, default="f1_weighted",
                       help="metric to show and rank by (default: f1_weighted)")
    board.add_argument("--sort-by", default=MEAN, metavar="KEY",
                       help=f"'{MEAN}' (default) or a data set name such as fpb, fiqa, tfns, nwgi; "
                            "runs without that data set rank last")
    board.add_argument("--require-all", action="store_true",
                       help="leave out runs that lack any data set another run has")
    board.add_argument("--published", action="store_true", help="also rank the published and seed rows")
    board.add_argument("--output", default=None, metavar="FILE", help="write the table here instead of stdout")
    board.set_defaults(func=run_leaderboard)


def _emit(text: str, output: str | None) -> None:
    if output:
        atomic_write_text(output, text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def run_compare(args: argparse.Namespace) -> int:
    if args.output:  # before reading anything: an unwritable --output must not fail at the end
        ensure_writable_file(args.output, "--output")
    text = render_comparison(
        args.results,
        metrics=args.metric or METRICS,
        fmt=args.format,
        include_published=not args.no_published,
        published_path=args.published_file,
    )
    _emit(text, args.output)
    return 0


def run_leaderboard(args: argparse.Namespace) -> int:
    if args.output:
        ensure_writable_file(args.output, "--output")
    text = render_leaderboard(
        args.directory,
        fmt=args.format,
        metric=args.metric,
        sort_by=args.sort_by,
        require_all=args.require_all,
        include_published=args.published,
    )
    _emit(text, args.output)
    return 0
