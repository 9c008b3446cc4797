"""hf-tsel leaderboard: a Gradio Space showing transferability rankings published with `hf-tsel push`.

Results come from the Hub dataset repo named by ``HF_TSEL_RESULTS_REPO`` (downloaded at start-up) or, for
development, a local results file or folder named by ``HF_TSEL_RESULTS_PATH``::

    HF_TSEL_RESULTS_PATH=results.parquet python spaces_app/app.py

The "Rank your dataset" tab runs :func:`hf_tsel.rank` and is enabled only on a GPU or when
``HF_TSEL_SPACE_ALLOW_RANK=1`` is set, since ranking a zoo on a shared CPU takes very long.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# On a Space the hf_tsel package is uploaded next to this file; in a checkout it is one level up.
for _root in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if (_root / "hf_tsel" / "__init__.py").is_file():
        sys.path.insert(0, str(_root))
        break

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from hf_tsel.defaults import DEFAULT_METRICS  # noqa: E402
from hf_tsel.hub_access import is_hub_repo_id  # noqa: E402
from hf_tsel.metrics import list_metrics  # noqa: E402
from hf_tsel.publish.leaderboard import (MEAN_RANK, RECOMMENDATION, LoadedResults, leaderboard_view,  # noqa: E402
                                         load_leaderboard_results, metrics_markdown, model_view,
                                         prediction_vs_truth, recommendation_html)

ALLOW_RANK_ENV = "HF_TSEL_SPACE_ALLOW_RANK"
_MAX_NOTES = 20


def rank_allowed() -> tuple[bool, str]:
    """Whether the "Rank your dataset" tab may run, and why (not)."""
    import torch

    if os.environ.get(ALLOW_RANK_ENV, "").lower() in ("1", "true", "yes"):
        return True, f"Ranking is enabled ({ALLOW_RANK_ENV} is set)."
    if torch.cuda.is_available():
        return True, f"Ranking runs on {torch.cuda.get_device_name(0)}."
    return False, (f"Ranking your own dataset is disabled here: this Space has no GPU and {ALLOW_RANK_ENV} is not "
                   "set. Extracting features of a model zoo on a shared CPU takes too long; run "
                   "`hf-tsel rank ORG/DATASET` on your own machine instead, or give the Space a GPU.")


def _notes_markdown(results: LoadedResults) -> str:
    if not results.notes:
        return ""
    shown = results.notes[:_MAX_NOTES]
    more = len(results.notes) - len(shown)
    lines = [f"- {note}" for note in shown] + ([f"- ... and {more} more"] if more else [])
    return "**Notes on the loaded results** (skipped or superseded records):\n" + "\n".join(lines)


def _rank_tab(metric_names: list[str]) -> None:
    allowed, reason = rank_allowed()
    gr.Markdown(reason, elem_id="rank-status")
    with gr.Row():
        dataset = gr.Textbox(label="Hub dataset id", placeholder="ORG/NAME", interactive=allowed)
        config = gr.Textbox(label="config (optional)", interactive=allowed)
        split = gr.Textbox(label="split", value="train", interactive=allowed)
    with gr.Row():
        zoo = gr.Textbox(label="zoo", value="", placeholder="default zoo", interactive=allowed)
        metrics = gr.CheckboxGroup(metric_names, value=[m for m in DEFAULT_METRICS if m in metric_names],
                                   label="metrics", interactive=allowed)
        max_samples = gr.Number(label="max images", value=1000, precision=0, interactive=allowed)
    button = gr.Button("Rank", variant="primary", interactive=allowed)
    columns = ["metric", "rank", "model", "family", "score", "note"]
    output = gr.Dataframe(pd.DataFrame(columns=columns), interactive=False, label="ranking")

    def run_rank(dataset_id, config_name, split_name, zoo_name, metric_list, limit):
        from hf_tsel import rank

        if not is_hub_repo_id((dataset_id or "").strip()):
            raise gr.Error("Enter a Hub dataset id like ORG/NAME.")
        try:
            df = rank(dataset_id.strip(), config=config_name or None, split=split_name or "train",
                      zoo=zoo_name or None, metrics=metric_list or None, max_samples=int(limit) if limit else None)
        except Exception as err:  # show the message in the UI instead of a stack trace
            raise gr.Error(str(err)) from err
        return df[columns].sort_values(["metric", "rank"])

    if allowed:
        button.click(run_rank, [dataset, config, split, zoo, metrics, max_samples], output)


def build_app(results: LoadedResults) -> gr.Blocks:
    """The leaderboard app for the loaded ``results``."""
    table = results.table
    targets = results.targets
    metric_names = sorted(table["metric"].unique())
    families = sorted(table["family"].unique())
    pretrainings = sorted(table["pretraining"].unique())
    first_target = targets[0] if targets else None
    first_metric = RECOMMENDATION if metric_names else None

    with gr.Blocks(title="hf-tsel leaderboard") as demo:
        gr.Markdown("# Which backbone should I fine-tune?\nTransferability rankings of pre-trained vision models "
                    f"computed with hf-tsel: {len(table)} scores of {table['model'].nunique()} models on "
                    f"{len(targets)} target dataset(s). Source: `{results.source}`.")
        gr.Markdown(_notes_markdown(results), elem_id="load-notes")
        with gr.Tab("Leaderboard"):
            with gr.Row():
                target = gr.Dropdown(targets, value=first_target, label="target dataset")
                metric = gr.Dropdown([RECOMMENDATION, MEAN_RANK, *metric_names], value=first_metric, label="metric")
                search = gr.Textbox(label="search models", placeholder="e.g. resnet, dino", elem_id="search")
            with gr.Row():
                family = gr.CheckboxGroup(families, value=families, label="model family", elem_id="family-filter")
                pretraining = gr.CheckboxGroup(pretrainings, value=pretrainings, label="pre-training",
                                               elem_id="pretraining-filter")
            answer = gr.HTML(recommendation_html(table, first_target), elem_id="recommendation")
            board = gr.Dataframe(leaderboard_view(table, first_target, first_metric), interactive=False,
                                 label="leaderboard (click a column header to sort)", elem_id="leaderboard",
                                 max_height=700, buttons=["copy", "fullscreen"])
            filters = [target, metric, family, pretraining, search]

            def update(target_value, metric_value, family_value, pretraining_value, search_value):
                return leaderboard_view(table, target_value, metric_value, families=family_value,
                                        pretraining=pretraining_value, search=search_value or "")

            def update_answer(target_value, family_value, pretraining_value):
                return recommendation_html(table, target_value, families=family_value, pretraining=pretraining_value)

            for control in filters:
                control.change(update, filters, board)
            for control in (target, family, pretraining):
                control.change(update_answer, [target, family, pretraining], answer)
        with gr.Tab("Model"):
            models = sorted(table["model"].unique())
            model = gr.Dropdown(models, value=models[0] if models else None, label="model")
            scores = gr.Dataframe(model_view(table, models[0] if models else None), interactive=False,
                                  label="all scores of this model")
            model.change(lambda name: model_view(table, name), model, scores)
        with gr.Tab("Predicted vs fine-tuned"):
            with gr.Row():
                plot_target = gr.Dropdown(targets, value=first_target, label="target dataset")
                plot_metric = gr.Dropdown(metric_names, value=metric_names[0] if metric_names else None,
                                          label="metric")
            points, caption = prediction_vs_truth(table, first_target, plot_metric.value)
            tau = gr.Markdown(caption)
            plot = gr.ScatterPlot(points, x="score", y="fine-tuned accuracy", color="family",
                                  tooltip=["model", "score", "fine-tuned accuracy"], height=420,
                                  x_title="predicted transferability score", y_title="fine-tuned accuracy")

            def update_plot(target_value, metric_value):
                new_points, text = prediction_vs_truth(table, target_value, metric_value)
                return new_points, text

            for control in (plot_target, plot_metric):
                control.change(update_plot, [plot_target, plot_metric], [plot, tau])
        with gr.Tab("About the metrics"):
            gr.Markdown("Every score is oriented so that **higher predicts better fine-tuning accuracy**; metrics "
                        "whose paper reports lower-is-better values are negated. The weighted Kendall tau "
                        "compares a metric's ranking with the ranking by fine-tuned accuracy (1 = identical).\n\n"
                        + metrics_markdown())
        with gr.Tab("Rank your dataset"):
            _rank_tab([spec.name for spec in list_metrics(include_transforms=False)])
    return demo


def main() -> None:
    demo = build_app(load_leaderboard_results())
    demo.launch(theme=gr.themes.Soft())  # host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT


if __name__ == "__main__":
    main()
