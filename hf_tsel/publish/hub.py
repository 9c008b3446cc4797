"""Push results to a Hub dataset repo: merge with what is there and commit atomically.

Every attempt reads the branch head, merges the new records into the published table
(:func:`~hf_tsel.publish.schema.merge_results`) and commits the table plus a regenerated card with
``parent_commit`` set to that head. If another pusher committed in between, the Hub refuses the commit
(HTTP 412) and the attempt is repeated on the new head, so concurrent pushes never overwrite each other.
The token comes from ``HF_TOKEN`` or the standard ``hf auth login``; it is never printed or stored.
"""

from __future__ import annotations

import io
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import PublishError
from ..results import ResultsError, write_results
from .card import RESULTS_PATH_IN_REPO, render_card
from .schema import MergeOutcome, load_records, merge_results, same_records

__all__ = ["PushError", "PushReport", "push_results"]

logger = logging.getLogger(__name__)

CARD_PATH_IN_REPO = "README.md"
_LOCAL_RUN_KEYS = ("cache_dir",)  # paths on the pusher's machine stay private
_CONFLICT_STATUSES = (409, 412)


PushError = PublishError  # the name this module has always exported


@dataclass
class PushReport:
    """What a push did: the counts of the merge and the commit made (``None`` when nothing changed)."""

    repo_id: str
    outcome: MergeOutcome
    commit_sha: str | None
    commit_url: str | None
    attempts: int
    local_path: Path

    def __str__(self) -> str:
        where = f"{self.repo_id} ({self.outcome.summary()})"
        if self.commit_sha is None:
            return f"{where}: already up to date, no commit made."
        return f"Pushed to {where}: commit {self.commit_sha[:10]} after {self.attempts} attempt(s). {self.commit_url}"


def _retry_hint(local_path: Path, repo_id: str) -> str:
    return f"Your results are saved in {local_path}; retry with: hf-tsel push {local_path} --repo {repo_id}"


def _status(err: Exception) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _read_published(api, repo_id: str, sha: str, files: set[str],
                    workdir: str) -> tuple[pd.DataFrame | None, str | None]:
    """The published table and card at commit ``sha`` (``None`` for what the repo does not hold yet)."""
    table = card = None
    if RESULTS_PATH_IN_REPO in files:
        path = api.hf_hub_download(repo_id, RESULTS_PATH_IN_REPO, repo_type="dataset", revision=sha, cache_dir=workdir)
        try:
            table, _ = load_records(path)
        except ResultsError as err:
            raise PushError(f"{repo_id}/{RESULTS_PATH_IN_REPO} holds records that fail validation ({err}); nothing "
                            "was pushed. Fix that file in the repo, or push to another repo with --repo.") from err
    if CARD_PATH_IN_REPO in files:
        path = api.hf_hub_download(repo_id, CARD_PATH_IN_REPO, repo_type="dataset", revision=sha, cache_dir=workdir)
        card = Path(path).read_text(encoding="utf-8")
    return table, card


def _operations(table: pd.DataFrame, card: str, runs: dict[str, dict], workdir: str) -> list:
    from huggingface_hub import CommitOperationAdd

    parquet = write_results(table, Path(workdir) / "results.parquet",
                            {"merged_by": "hf-tsel push", "run_ids": sorted(set(table["run_id"]))})
    operations = [CommitOperationAdd(RESULTS_PATH_IN_REPO, parquet.read_bytes()),
                  CommitOperationAdd(CARD_PATH_IN_REPO, card.encode("utf-8"))]
    for run_id, metadata in sorted(runs.items()):
        public = {k: v for k, v in metadata.items() if k not in _LOCAL_RUN_KEYS}
        payload = json.dumps(public, indent=2, sort_keys=True, default=str).encode("utf-8")
        operations.append(CommitOperationAdd(_run_path(run_id), io.BytesIO(payload)))
    return operations


def _attempt(api, repo_id: str, records: pd.DataFrame, runs: dict[str, dict], message: str):
    """One read-merge-commit round; returns ``(outcome, commit or None)``."""
    info = api.repo_info(repo_id, repo_type="dataset")
    files = {sibling.rfilename for sibling in info.siblings or []}
    with tempfile.TemporaryDirectory(prefix="hf-tsel-push-") as workdir:
        published, old_card = _read_published(api, repo_id, info.sha, files, workdir)
        outcome = merge_results(published, records)
        card = render_card(outcome.table, repo_id)
        new_runs = [run_id for run_id in runs if _run_path(run_id) not in files]
        up_to_date = published is not None and same_records(published, outcome.table) and card == old_card
        if up_to_date and not new_runs:
            return outcome, None
        operations = _operations(outcome.table, card, runs, workdir)
        commit = api.create_commit(repo_id, repo_type="dataset", operations=operations, commit_message=message,
                                   parent_commit=info.sha)
    return outcome, commit


def push_results(results: pd.DataFrame | str | Path, repo_id: str, *, run_metadata: dict | None = None,
                 private: bool | None = None, token: str | None = None, endpoint: str | None = None,
                 max_attempts: int = 5, commit_message: str | None = None,
                 local_path: str | Path | None = None) -> PushReport:
    """Merge results into the Hub dataset repo ``repo_id`` (created if needed) and regenerate its card.

    Args:
        results: a results table, or a file written by ``hf-tsel rank/demo --output`` (csv, json, parquet).
        repo_id: ``ORG/NAME`` of the dataset repo.
        run_metadata: metadata of the run (read from the file when ``results`` is a path); stored as
            ``runs/<run_id>.json`` in the repo.
        private: visibility of a newly created repo (``None``: the Hub's default).
        token: Hub token; default ``HF_TOKEN`` or the saved login.
        endpoint: Hub URL; default ``HF_ENDPOINT`` or huggingface.co.
        max_attempts: commits tried when other pushers keep committing in between.
        commit_message: defaults to a summary of the merge.
        local_path: where ``results`` are saved locally (named in the retry hint when the upload fails); a
            table given without it is first written to ``hf-tsel-results-<run_id>.parquet`` in the current folder.

    Returns:
        A :class:`PushReport`; ``commit_sha`` is ``None`` when the repo already held these records.

    Raises:
        PushError: invalid records (nothing pushed) or a failed upload (with the command to retry).

    Example:
        >>> push_results("results.parquet", "my-org/backbone-rankings")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if local_path is None and not isinstance(results, pd.DataFrame):
        local_path = results
    source = str(local_path) if local_path is not None else "the results"
    try:
        records, file_run = load_records(results)
    except (ResultsError, FileNotFoundError) as err:
        raise PushError(f"cannot push {source}: {err}. Nothing was pushed.") from err
    if not len(records):
        raise PushError(f"{source} hold no records; nothing to push.")
    run = dict(run_metadata) if run_metadata is not None else file_run
    if local_path is None:  # results are always saved locally before any upload
        local_path = write_results(records, f"hf-tsel-results-{_file_safe(records['run_id'].iloc[0])}.parquet", run)
    local_path = Path(local_path)
    run_ids = sorted(set(records["run_id"]))
    # the run metadata describes one run: the one it names, or the only one in the records
    run_id = run.get("run_id", run_ids[0] if len(run_ids) == 1 else None) if run else None
    runs = {run_id: run} if run_id in run_ids else {}

    api = HfApi(endpoint=endpoint, token=token)
    message = commit_message or f"hf-tsel push: {len(records)} record(s) from run(s) {', '.join(run_ids)}"
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        attempt = 1
        while True:
            try:
                outcome, commit = _attempt(api, repo_id, records, runs, message)
            except HfHubHTTPError as err:
                if _status(err) not in _CONFLICT_STATUSES or attempt >= max_attempts:
                    raise
                logger.info("%s changed while pushing (attempt %d/%d); merging again", repo_id, attempt, max_attempts)
                time.sleep(random.uniform(0.2, 1.0) * attempt)  # jitter so racing pushers do not collide again
                attempt += 1
                continue
            return PushReport(repo_id, outcome, commit.oid if commit else None,
                              commit.commit_url if commit else None, attempt, local_path)
    except PushError:
        raise
    except Exception as err:  # network, auth, Hub errors: say what happened and how to retry
        raise PushError(f"upload to the Hub dataset {repo_id} failed: {_describe_error(err)}. "
                        f"{_retry_hint(local_path, repo_id)}") from err


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in str(text)) or "run"


def _run_path(run_id: str) -> str:
    return f"runs/{_file_safe(run_id)}.json"


def _describe_error(err: Exception) -> str:
    status = _status(err)
    if status in _CONFLICT_STATUSES:
        return "other pushers kept committing to the repo; the merge was retried too many times"
    if status == 401:
        return "not authenticated (set HF_TOKEN or run `hf auth login`)"
    if status == 403:
        return "your token may not write to this repo (check its permissions)"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{type(err).__name__}: {first_line}"
