"""``driftline offline train``: from a table of history and a framing card to an output directory.

The steps, in order: check the data against the card; derive the feature schema; drop rows without a target
(exact duplicates are counted and kept unless the card drops them); lock the test set; on a bounded sample of
the training rows search hyperparameters and cross-validate the baselines and candidates, choose one, pick the
binary threshold from the costs and analyse errors by slice (all on out-of-fold predictions); fit the chosen
model and the baseline on the full training set and replay the River model; open the test set once for the
final scores, intervals and verdict; explain the chosen model on it; write everything atomically.

:func:`train` reads a file; :func:`train_frame` takes a DataFrame (the stream's retraining builds one from
recent events joined with their labels). Both return a :class:`TrainResult`.

Examples
--------
>>> df = pd.DataFrame({"x": [1.0, 2.0, 2.0, 3.0, 4.0, 5.0], "y": ["no", "yes", "yes", "no", "no", None]})
>>> from driftline.offline.framing import draft_card
>>> rows = prepare_rows(df, draft_card(df, "y"))
>>> rows.rows_read, rows.missing_target, rows.duplicates, rows.labels, rows.frame[CODE].tolist()
(6, 1, 1, ['no', 'yes'], [0, 1, 1, 0, 0])
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile
from driftline.offline.candidates import RiverEstimator, TrainedModel, make_estimator, predictions
from driftline.offline.data import check_frame, load_table, parse_time
from driftline.offline.evaluate import (
    Estimate,
    Verdict,
    best_constant_baseline,
    choose_threshold,
    decide_verdict,
    evaluate_models,
    expected_cost,
    secondary_metrics,
)
from driftline.offline.export import (
    ONLINE_MODEL,
    RIVER_MODEL,
    atomic_directory,
    check_output_dir,
    sha256_file,
    write_json,
    write_manifest,
    write_pickle,
)
from driftline.offline.framing import FramingCard, card_to_dict, load_card
from driftline.offline.importance import MAX_ROWS as IMPORTANCE_ROWS
from driftline.offline.importance import feature_effect, permutation_importance, shap_importance
from driftline.offline.prepare import conform_columns, deduplicate, feature_schema
from driftline.offline.profile import reference_profile
from driftline.offline.progress import NullProgress, Progress
from driftline.offline.report import ReportInputs, render_report
from driftline.offline.selection import SelectionSetup, baseline_name, build_chosen, candidate_order, select_model
from driftline.offline.skops_model import BASELINE_MODEL, CHOSEN_MODEL, save_model
from driftline.offline.slices import overall_error, slice_metrics
from driftline.offline.split import sample_positions, split_train_test
from driftline.offline.targets import encode_target

#: Training rows the River model scores for the prediction profile of the reference.
PREDICTION_PROFILE_ROWS = 20_000
#: Features whose effect curve the report draws (the most important by permutation).
TOP_EFFECTS = 6
#: Column holding the encoded target next to the features (not a feature).
CODE = "__driftline_target_code__"


@dataclass
class TrainResult:
    """Where the outputs went and the content of ``metrics.json``."""

    out_dir: Path
    metrics: dict[str, Any]


@dataclass
class Outcome:
    """Everything a training run produced, before anything is written."""

    metrics: dict[str, Any]
    card: FramingCard
    schema: FeatureSchema
    labels: list[Any]
    chosen: TrainedModel
    baseline: TrainedModel
    river: RiverEstimator
    reference: ReferenceProfile
    y_test: np.ndarray
    test_outputs: dict[str, np.ndarray]


def train(
    data: Path, framing: Path | FramingCard, out_dir: Path, *, force: bool = False, progress: Progress | None = None
) -> TrainResult:
    """Train from a CSV or Parquet file with a framing card (a path or a :class:`FramingCard`)."""
    progress = progress or NullProgress()
    card = framing if isinstance(framing, FramingCard) else load_card(Path(framing))
    check_output_dir(Path(out_dir), force)
    with progress.task(f"read {Path(data).name}"):
        df = load_table(Path(data))
    return train_frame(df, card, out_dir, force=force, progress=progress, source=str(data))


def train_frame(
    df: pd.DataFrame,
    framing: FramingCard,
    out_dir: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    source: str = "<DataFrame>",
) -> TrainResult:
    """Train from a DataFrame; outputs appear in ``out_dir`` only if every step succeeded."""
    progress = progress or NullProgress()
    out_dir = Path(out_dir)
    check_output_dir(out_dir, force)
    outcome = fit_and_evaluate(df, framing, progress, source)
    with atomic_directory(out_dir, force) as tmp, progress.task("write outputs and report"):
        write_outputs(outcome, tmp)
    return TrainResult(out_dir, outcome.metrics)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)


@dataclass
class PreparedRows:
    """The rows a run uses: checked, without missing targets, the encoded target in ``CODE``; ``duplicates``
    counts exact duplicate rows (dropped when the card says so)."""

    frame: pd.DataFrame
    schema: FeatureSchema
    labels: list[Any]
    order: np.ndarray | None
    groups: np.ndarray | None
    rows_read: int
    missing_target: int
    duplicates: int
    rows_used: int
    conflicts: dict[str, int] = field(default_factory=dict)
    conflicting: int = 0


def prepare_rows(df: pd.DataFrame, card: FramingCard) -> PreparedRows:
    """Check ``df`` against the card, keep the used columns, drop rows without a target, count exact duplicates
    (dropped only when the card says so), encode the target, and parse the time order / group ids the split needs."""
    rows_read = len(df)
    conformed = conform_columns(df, card)
    df = conformed.frame
    check_frame(df, card)
    schema = feature_schema(df, card)
    used = [c for c in df.columns if c in {card.target, card.time_column, *card.id_columns, *schema.kinds}]
    frame = df[used]
    frame = frame[frame[card.target].notna()]
    missing_target = len(df) - len(frame)
    if card.training.drop_duplicates:
        frame, duplicates = deduplicate(frame)
    else:
        duplicates = int(frame.duplicated().sum())
    codes, labels = encode_target(frame[card.target], card.task, card.positive_class)
    order = _time_order(frame[card.time_column]) if card.time_column else None
    groups = frame[card.id_columns[0]].to_numpy() if card.split.strategy == "group" else None
    return PreparedRows(
        frame.assign(**{CODE: codes}),
        schema,
        labels,
        order,
        groups,
        rows_read,
        missing_target,
        duplicates,
        len(frame),
        conformed.conflicts,
        conformed.dropped,
    )


def fit_and_evaluate(df: pd.DataFrame, card: FramingCard, progress: Progress, source: str) -> Outcome:
    """All the training and evaluation of a run, without writing anything."""
    timer = _Timer()
    total_started = time.perf_counter()
    with timer("prepare"), progress.task("check and prepare data"):
        data = prepare_rows(df, card)
    schema, labels = data.schema, data.labels
    regression = card.task == "regression"
    with timer("split"):
        train_df, test_set = split_train_test(
            data.frame,
            y_codes=data.frame[CODE].to_numpy(),
            strategy=card.split.strategy,
            test_size=card.split.test_size,
            seed=card.split.seed,
            regression=regression,
            order=data.order,
            groups=data.groups,
        )
        del data.frame  # train_df and the locked test set hold the rows from here on
        features = list(schema.kinds)
        X_train, y_train = train_df[features], train_df[CODE].to_numpy()  # noqa: N806
        sample = sample_positions(
            len(train_df),
            card.training.search_rows,
            y_codes=y_train,
            regression=regression,
            time_ordered=card.split.strategy == "time",
            seed=card.split.seed,
        )
        X_sample, y_sample = X_train.iloc[sample], y_train[sample]  # noqa: N806
        groups = train_df[card.id_columns[0]].to_numpy()[sample] if card.split.strategy == "group" else None
    setup = SelectionSetup(
        schema=schema,
        task=card.task,
        metric=card.primary_metric,
        labels=labels,
        folds=card.split.folds,
        strategy=card.split.strategy,
        seed=card.split.seed,
        groups=groups,
        river_rows=card.training.river_rows,
        ensemble=card.training.ensemble,
    )
    names = candidate_order(card.task, card.training.candidates)
    with timer("search_and_cv"):
        selection = select_model(X_sample, y_sample, names, setup, progress)
    chosen = selection.chosen
    covered = selection.covered
    threshold = None
    threshold_cost = None
    if card.task == "binary":
        threshold, threshold_cost = choose_threshold(
            y_sample[covered],
            chosen.oof[covered][:, 1],
            cost_fp=card.costs["false_positive"],
            cost_fn=card.costs["false_negative"],
        )
    with timer("error_analysis"):
        slices = slice_metrics(
            X_sample.iloc[covered],
            schema,
            y_sample[covered],
            chosen.oof[covered],
            task=card.task,
            metric=card.primary_metric,
            threshold=threshold,
        )
        overall = overall_error(y_sample[covered], chosen.oof[covered], task=card.task, threshold=threshold)
    with timer("final_fit"):
        with progress.task(f"fit {chosen.name} on {len(X_train):,} training rows"):
            chosen_estimator = build_chosen(chosen, setup).fit(X_train, y_train)
        base_name = card.baseline if isinstance(card.baseline, str) else baseline_name(card.task)
        constant_scores: dict[str, float] = {}
        if card.task == "binary" and card.baseline == "majority":
            base_name, constant_scores = best_constant_baseline(card.primary_metric, y_train)
        with progress.task(f"fit baseline {base_name}"):
            base_estimator = _fit_baseline(base_name, chosen, chosen_estimator, setup, X_train, y_train)
        river = _river_model(selection.results, chosen, chosen_estimator, setup)
        if river is not chosen_estimator:
            with progress.task(f"replay {min(len(X_train), card.training.river_rows):,} rows into River"):
                river.fit(X_train, y_train)
    with timer("test"), progress.task(f"score the locked test set ({test_set.rows:,} rows, once)"):
        test_df = test_set.open()
        X_test, y_test = test_df[features], test_df[CODE].to_numpy()  # noqa: N806
        k = len(labels) or None
        outputs = {chosen.name: predictions(chosen_estimator, X_test, card.task, k)}
        outputs.setdefault(base_name, predictions(base_estimator, X_test, card.task, k))
        outputs.setdefault("river", predictions(river, X_test, card.task, k))
    with timer("explain"), progress.task("permutation importance and effects on the test set"):
        explanations = explain_model(chosen_estimator, X_test, y_test, card, threshold, k)
    with timer("bootstrap"), progress.task(f"bootstrap {card.training.bootstrap} resamples of the test set"):
        thresholds = {chosen.name: threshold}
        baseline_ref = base_name if isinstance(card.baseline, str) else float(card.baseline)
        estimates, gain = evaluate_models(
            card.primary_metric,
            y_test,
            outputs,
            task=card.task,
            thresholds=thresholds,
            baseline=baseline_ref,
            primary=chosen.name,
            resamples=card.training.bootstrap,
            seed=card.split.seed,
        )
    model_estimate = estimates[chosen.name]
    base_estimate = (
        estimates[base_name]
        if isinstance(card.baseline, str)
        else Estimate(float(card.baseline), float(card.baseline), float(card.baseline))
    )
    verdict = decide_verdict(
        card.primary_metric,
        model_estimate,
        base_estimate,
        gain,
        min_improvement=card.min_improvement,
        min_score=card.min_score,
    )
    if chosen.name == base_name and isinstance(card.baseline, str):
        verdict = Verdict(
            False, [f"no candidate beat the card's baseline ({base_name}) in cross-validation", *verdict.reasons]
        )
    with timer("reference_profile"), progress.task("reference profile"):
        profile_pos = sample_positions(
            len(X_train),
            PREDICTION_PROFILE_ROWS,
            y_codes=y_train,
            regression=regression,
            time_ordered=card.split.strategy == "time",
            seed=card.split.seed,
        )
        reference = reference_profile(
            X_train, schema, _prediction_values(river, X_train.iloc[profile_pos], labels), seed=card.split.seed
        )
    repeated = _rows_also_in(test_df[[*features, CODE]], train_df[[*features, CODE]])
    warnings = []
    if data.duplicates and not card.training.drop_duplicates:
        warnings.append(
            f"{data.duplicates:,} exact duplicate rows kept (of {data.rows_used:,}); {repeated:,} test rows also "
            "appear in training, which flatters the test score. Set [training] drop_duplicates = true to drop them."
        )
    metrics = {
        "source": source,
        "warnings": warnings,
        "target": card.target,
        "task": card.task,
        "labels": labels,
        "primary_metric": card.primary_metric,
        "higher_is_better": card.higher_is_better,
        "go_no_go_rule": card.go_no_go_rule()
        + (
            f"; the baseline is the better constant on the training labels: {base_name}"
            f" (majority {constant_scores['majority']:.4g}, always_positive {constant_scores['always_positive']:.4g})"
            if constant_scores
            else ""
        ),
        "data": {
            "rows_read": data.rows_read,
            "missing_target_dropped": data.missing_target,
            "duplicate_rows": data.duplicates,
            "duplicates_dropped": data.duplicates if card.training.drop_duplicates else 0,
            "test_rows_also_in_training": repeated,
            "conflicting_dropped": data.conflicting,
            "conflicts": data.conflicts,
            "rows_used": data.rows_used,
            "features": schema.to_dict(),
            "feature_count": len(schema.kinds),
        },
        "split": {
            "strategy": card.split.strategy,
            "test_size": card.split.test_size,
            "train_rows": len(train_df),
            "test_rows": test_set.rows,
            "test_sha256": test_set.sha256,
            "test_set_opened": test_set.opened,
            **_time_ranges(card, train_df, test_df),
        },
        "search": {
            "rows": len(X_sample),
            "validation_rows": selection.validation_rows,
            "folds": len(selection.folds),
            "note": "hyperparameter search and k-fold CV run on this sample of the training rows",
        },
        "candidates": [r.summary() for r in selection.results],
        "chosen": {"name": chosen.name, "params": chosen.params, "cv_mean": chosen.cv_mean},
        "threshold": None
        if threshold is None
        else {
            "value": threshold,
            "expected_cost_validation": threshold_cost,
            "expected_cost_test": expected_cost(card.task, y_test, outputs[chosen.name], card.costs, threshold),
            "costs": card.costs,
            "chosen_on": "out-of-fold predictions of the chosen model",
        },
        "test": {
            "metric": card.primary_metric,
            **model_estimate.to_dict(),
            "rows": test_set.rows,
            "bootstrap": card.training.bootstrap,
            "expected_cost": expected_cost(card.task, y_test, outputs[chosen.name], card.costs, threshold),
            "secondary": secondary_metrics(card.task, y_test, outputs[chosen.name], threshold),
        },
        "baseline": {
            "name": base_name if isinstance(card.baseline, str) else "card",
            **base_estimate.to_dict(),
            **({"constant_scores_on_training_labels": constant_scores} if constant_scores else {}),
        },
        "improvement": gain.to_dict(),
        "test_models": {name: est.to_dict() for name, est in estimates.items()},
        "online_model": {
            "name": "river",
            "params": {"learning_rate": river.learning_rate},
            "replayed_rows": river.replayed_rows_,
            "test": estimates["river"].to_dict() if "river" in estimates else model_estimate.to_dict(),
        },
        "verdict": verdict.to_dict(),
        "slices": slices,
        "slices_overall": overall,
        "explanations": explanations,
    }
    timer.seconds["total"] = round(time.perf_counter() - total_started, 3)
    metrics["timings_seconds"] = timer.seconds
    features_list = list(schema.kinds)
    return Outcome(
        metrics=metrics,
        card=card,
        schema=schema,
        labels=labels,
        chosen=TrainedModel(chosen.name, chosen_estimator, card.task, labels, threshold, features_list),
        baseline=TrainedModel(base_name, base_estimator, card.task, labels, None, features_list),
        river=river,
        reference=reference,
        y_test=y_test,
        test_outputs=outputs,
    )


def explain_model(
    estimator: Any,
    X_test: pd.DataFrame,  # noqa: N803
    y_test: np.ndarray,
    card: FramingCard,
    threshold: float | None,
    k: int | None,
) -> dict[str, Any]:
    """Permutation importance of every feature on the test set, the effect curves of the top ones and, for tree
    ensembles with ``shap`` installed, mean |SHAP| per feature (after the verdict's inputs are fixed: nothing here
    decides anything)."""

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return predictions(estimator, frame, card.task, k)

    seed = card.split.seed
    ranked = permutation_importance(
        predict, X_test, y_test, card.primary_metric, card.task, threshold=threshold, seed=seed
    )
    top = [r["feature"] for r in ranked[:TOP_EFFECTS]]
    return {
        "metric": card.primary_metric,
        "permutation_importance": ranked,
        "effects": [feature_effect(predict, X_test, name, card.task, seed=seed) for name in top],
        "shap": shap_importance(estimator, X_test, seed=seed),
        "rows": min(len(X_test), IMPORTANCE_ROWS),
    }


def write_outputs(outcome: Outcome, directory: Path) -> None:
    """Write every artifact and the manifest into ``directory``."""
    card, metrics = outcome.card, outcome.metrics
    write_json(directory / "metrics.json", metrics)
    save_model(directory / CHOSEN_MODEL, outcome.chosen)
    save_model(directory / BASELINE_MODEL, outcome.baseline)
    write_pickle(directory / RIVER_MODEL, outcome.river.model_)
    write_json(
        directory / ONLINE_MODEL,
        {
            "task": card.task,
            "schema": outcome.schema.to_dict(),
            "sha256": sha256_file(directory / RIVER_MODEL),
            "target": card.target,
            "labels": outcome.labels,
            "positive_class": card.positive_class,
            "label_encoding": _label_encoding(card.task),
            "params": {"learning_rate": outcome.river.learning_rate},
            "replayed_rows": outcome.river.replayed_rows_,
            "test": metrics["online_model"]["test"],
            "prediction_profile": _prediction_kind(card.task),
        },
    )
    (directory / "reference_profile.json").write_text(outcome.reference.to_json())
    report = ReportInputs(
        metrics=metrics,
        card=card_to_dict(card),
        y_test=outcome.y_test,
        outputs=outcome.test_outputs,
        labels=outcome.labels,
        reference=outcome.reference,
    )
    (directory / "report.html").write_text(render_report(report), encoding="utf-8")
    write_manifest(directory)


def _rows_also_in(rows: pd.DataFrame, other: pd.DataFrame) -> int:
    """How many of ``rows`` equal some row of ``other`` exactly (NaN equal to NaN).

    >>> _rows_also_in(pd.DataFrame({"a": [1, 2, None]}), pd.DataFrame({"a": [2, None, 5]}))
    2
    """
    if rows.empty or other.empty:
        return 0
    seen = set(pd.util.hash_pandas_object(other, index=False).tolist())
    return int(sum(h in seen for h in pd.util.hash_pandas_object(rows, index=False).tolist()))


def _time_order(column: pd.Series) -> np.ndarray:
    parsed = parse_time(column)
    if pd.api.types.is_datetime64_any_dtype(parsed):
        return parsed.astype("int64").to_numpy()
    return parsed.to_numpy(dtype=float)


def _time_ranges(card: FramingCard, train_df: pd.DataFrame, test_df: pd.DataFrame) -> dict[str, str]:
    """First and last time of train and test (time-ordered splits): the audit trail of no look-ahead."""
    if not card.time_column:
        return {}
    ranges = {}
    for side, part in (("train", train_df), ("test", test_df)):
        times = parse_time(part[card.time_column])
        ranges[f"{side}_time_first"], ranges[f"{side}_time_last"] = str(times.min()), str(times.max())
    return ranges


def _fit_baseline(
    name: str, chosen: Any, chosen_estimator: Any, setup: SelectionSetup, X: pd.DataFrame, y: np.ndarray
) -> Any:  # noqa: N803
    if name == chosen.name:
        return chosen_estimator
    params = (
        {"alpha": 1.0} if name == "linear" and setup.task == "regression" else ({"C": 1.0} if name == "linear" else {})
    )
    return make_estimator(name, params, schema=setup.schema, task=setup.task, labels=setup.labels, seed=setup.seed).fit(
        X, y
    )


def _river_model(results: list[Any], chosen: Any, chosen_estimator: Any, setup: SelectionSetup) -> RiverEstimator:
    """The chosen estimator when it is River, else a fresh River estimator with the searched (or default) rate."""
    if isinstance(chosen_estimator, RiverEstimator):
        return chosen_estimator
    searched = next((r.params for r in results if r.name == "river"), {})
    return setup.estimator("river", searched)


def _prediction_values(river: RiverEstimator, X: pd.DataFrame, labels: list[Any]) -> list[Any]:  # noqa: N803
    """What the prediction profile holds: P(positive) for binary, the class (as text) for multiclass,
    the predicted number for regression."""
    if river.task == "regression":
        return river.predict(X).tolist()
    proba = river.predict_proba(X)
    if river.task == "binary":
        return proba[:, 1].tolist()
    return [str(labels[i]) for i in np.argmax(proba, axis=1)]


def _prediction_kind(task: str) -> str:
    return {
        "binary": "probability of the positive class",
        "multiclass": "predicted class (text)",
        "regression": "predicted value",
    }[task]


def _label_encoding(task: str) -> str:
    return {
        "binary": "River learns bool(label == positive_class)",
        "multiclass": "River learns the class value",
        "regression": "River learns float(label)",
    }[task]
