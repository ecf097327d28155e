"""`fingpt-hf push`: upload a training output directory to the Hub in one commit."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload an adapter, its tokenizer, model card, results and plots to the Hub in one commit",
        description=(
            "Upload OUTPUT_DIR (adapter, tokenizer, README.md model card - generated when missing -, "
            "fingpt_run.json, results and confusion plots) to a Hub model repository in one commit. "
            "The token is taken from HF_TOKEN or the `hf auth login` cache."
        ),
    )
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="a training run's output directory")
    parser.add_argument("--repo-id", "--repo_id", dest="repo_id", required=True, metavar="USER/NAME",
                        help="Hub model repository; created when missing")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, metavar="BRANCH",
                        help="branch to commit to (created when missing; default: main)")
    parser.add_argument("--commit-message", "--commit_message", dest="commit_message", default=None,
                        help="commit message (default: 'Upload fingpt-hf adapter (N files)')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fingpt_hf.hub.push import push_to_hub

    url = push_to_hub(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(url)
    return 0
