"""``hf-tsel space``: deploy the leaderboard Space, or serve it locally."""

from __future__ import annotations

import argparse
import os
import runpy
from pathlib import Path

from ..errors import UserError
from ._args import port_number
from .push import repo_id_type


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help="deploy or serve the Gradio leaderboard Space")
    actions = parser.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    deploy = actions.add_parser("deploy", help="create/update a Gradio Space on the Hub with the leaderboard app",
                                description="Upload spaces_app/ plus the hf_tsel package to the Space ORG/NAME "
                                            "(created with the gradio SDK if needed).")
    deploy.add_argument("--repo", required=True, type=repo_id_type, metavar="ORG/NAME", help="the Space to deploy to")
    deploy.add_argument("--results-repo", type=repo_id_type, metavar="ORG/NAME",
                        help="dataset repo written by `hf-tsel push`; set as the Space's HF_TSEL_RESULTS_REPO")
    deploy.add_argument("--app-dir", help="folder with the app (default: spaces_app/ of this checkout)")
    deploy.add_argument("--private", action="store_true", help="create the Space as private if it does not exist")
    deploy.set_defaults(func=run_deploy)
    serve = actions.add_parser("serve", help="run the leaderboard app locally on 127.0.0.1")
    serve.add_argument("results", metavar="RESULTS", help="results file or folder, or a Hub dataset repo id")
    serve.add_argument("--port", type=port_number, default=7860, help="port (default 7860)")
    serve.add_argument("--app-dir", help="folder with the app (default: spaces_app/ of this checkout)")
    serve.set_defaults(func=run_serve)


def run_deploy(args: argparse.Namespace) -> int:
    from ..publish.space import deploy_space

    url = deploy_space(args.repo, results_repo=args.results_repo, app_dir=args.app_dir, private=args.private or None)
    print(f"Deployed the leaderboard to the Space {args.repo}: {url}")
    if not args.results_repo:
        print("Set the Space variable HF_TSEL_RESULTS_REPO=ORG/NAME (or deploy with --results-repo) so it finds "
              "your results.")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from ..hub_access import looks_like_local_path
    from ..publish.leaderboard import RESULTS_PATH_ENV, RESULTS_REPO_ENV
    from ..publish.space import default_app_dir

    app = Path(args.app_dir or default_app_dir()) / "app.py"
    if not app.is_file():
        raise UserError(f"no app found at {app}; pass --app-dir pointing at spaces_app/ of an hf-tsel checkout")
    local = Path(args.results).expanduser().exists()
    if not local and (looks_like_local_path(args.results) or args.results.endswith((".csv", ".json", ".parquet"))):
        raise UserError(f"the results file {args.results!r} does not exist",
                        fix="check the path for typos, or pass a Hub dataset repo id (org/name).")
    os.environ[RESULTS_PATH_ENV if local else RESULTS_REPO_ENV] = args.results
    os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
    os.environ["GRADIO_SERVER_PORT"] = str(args.port)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    runpy.run_path(str(app), run_name="__main__")
    return 0
