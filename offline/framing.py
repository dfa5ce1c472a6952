"""The framing card: what the model is for and how it will be judged, written before any training.

``driftline offline frame`` drafts one from the data (:func:`draft_card`) as commented TOML
(:func:`card_to_toml`); the user edits it and ``driftline offline train`` reads it back (:func:`load_card`).

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"id": range(6), "amount": [1.0, 2, 3, 4, 5, 6], "fraud": [0, 1, 0, 0, 1, 0]})
>>> card = draft_card(df, "fraud")
>>> card.task, card.primary_metric, card.positive_class, card.id_columns, card.baseline
('binary', 'f1', 1, ('id',), 'majority')
>>> parse_card(card_to_toml(card)) == card
True
>>> card.go_no_go_rule()
'GO when the 95% CI of the test f1 improvement over majority is above 0 (no minimum f1 set)'
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import tomli_w

from driftline.models.features import category_text
from driftline.models.specs import TASKS, AmbiguousTask, Task, TaskInference, task_from_counts
from driftline.offline.errors import OfflineError
from driftline.offline.targets import native

Metric = Literal["f1", "accuracy", "roc_auc", "rmse", "mae"]
SplitStrategy = Literal["time", "stratified", "random", "group"]

CLASSIFICATION_METRICS: tuple[Metric, ...] = ("f1", "accuracy", "roc_auc")
REGRESSION_METRICS: tuple[Metric, ...] = ("rmse", "mae")
SPLIT_STRATEGIES: tuple[SplitStrategy, ...] = ("time", "stratified", "random", "group")
BASELINES = ("majority", "mean", "linear")
#: Candidate names train.py knows; the default set is what the benchmark times.
KNOWN_CANDIDATES = ("linear", "hist_gradient_boosting", "random_forest", "river")
DEFAULT_CANDIDATES = ("linear", "hist_gradient_boosting", "river")
#: Error costs the card asks for, per task.
COST_KEYS: dict[str, tuple[str, ...]] = {
    "binary": ("false_positive", "false_negative"),
    "multiclass": ("misclassification",),
    "regression": ("over_prediction", "under_prediction"),
}
TIME_NAMES = ("ts", "time", "timestamp", "date", "datetime", "event_time")
TIME_SUFFIXES = ("_at", "_time", "_date", "_ts")


@dataclass(frozen=True)
class SplitPlan:
    """How the data is split: a locked test set, then k folds for cross-validation."""

    strategy: SplitStrategy = "stratified"
    test_size: float = 0.2
    folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class TrainingPlan:
    """Which candidates run and how much data the costly steps see (1M-row files stay feasible)."""

    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    ensemble: bool = False
    search_rows: int = 30_000
    river_rows: int = 100_000
    bootstrap: int = 1000
    #: Drop exact duplicate rows before the split (kept by default: dropping changes the class balance).
    drop_duplicates: bool = False


@dataclass(frozen=True)
class FramingCard:
    """The decision, the target, the metric and costs, the go/no-go rule, the columns and the split."""

    target: str
    task: Task
    primary_metric: Metric
    decision: str = "describe the decision this model supports"
    unit: str = "one row of the data"
    positive_class: Any = None
    baseline: str | float = "majority"
    min_improvement: float = 0.0
    min_score: float | None = None
    costs: dict[str, float] = field(default_factory=dict)
    id_columns: tuple[str, ...] = ()
    time_column: str | None = None
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    split: SplitPlan = SplitPlan()
    training: TrainingPlan = TrainingPlan()

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def higher_is_better(self) -> bool:
        """True for F1, accuracy and ROC-AUC; False for RMSE and MAE."""
        return self.primary_metric in CLASSIFICATION_METRICS

    @property
    def named_columns(self) -> dict[str, list[str]]:
        """Every column the card names, by the card field naming it."""
        named = {
            "[problem] target": [self.target],
            "[columns] id": list(self.id_columns),
            "[columns] exclude": list(self.exclude),
            "[columns] categorical": list(self.categorical),
        }
        if self.time_column:
            named["[columns] time"] = [self.time_column]
        return named

    def go_no_go_rule(self) -> str:
        """The verdict rule in words."""
        floor = "no minimum" if self.min_score is None else ("minimum" if self.higher_is_better else "maximum")
        score = (
            f"no minimum {self.primary_metric} set"
            if self.min_score is None
            else (f"and its CI stays {'above' if self.higher_is_better else 'below'} {floor} {self.min_score:g}")
        )
        return (
            f"GO when the 95% CI of the test {self.primary_metric} improvement over {self.baseline} "
            f"is above {self.min_improvement:g} ({score})"
        )


def default_metric(task: Task) -> Metric:
    """F1 (macro for multiclass) for classification, RMSE for regression.

    >>> default_metric("binary"), default_metric("regression")
    ('f1', 'rmse')
    """
    return "rmse" if task == "regression" else "f1"


def default_costs(task: Task) -> dict[str, float]:
    """Equal unit costs for every error type of ``task``.

    >>> default_costs("binary")
    {'false_positive': 1.0, 'false_negative': 1.0}
    """
    return dict.fromkeys(COST_KEYS[task], 1.0)


def target_inference(values: pd.Series) -> TaskInference:
    """The task most of a target column's values agree on, and its stray values
    (see :func:`driftline.models.specs.infer_task_of`); :class:`OfflineError` when the column is ambiguous.

    >>> target_inference(pd.Series([0, 1] * 200 + [7])).describe()
    'binary from 401 labels (classes 0, 1); 1 stray label (7: 1) does not fit and is rejected'
    """
    counts: dict[Any, int] = {}
    for value, count in values.dropna().value_counts(sort=False).items():
        counts[native(value)] = counts.get(native(value), 0) + int(count)
    try:
        return task_from_counts(counts)
    except AmbiguousTask as exc:
        raise OfflineError(f"target '{values.name}': {exc} ([problem] task in the card)") from None


def target_task(values: pd.Series) -> Task:
    """The task implied by a target column (see :func:`target_inference`).

    >>> target_task(pd.Series([0.5, 1.5, 2.25, 3.0]))
    'regression'
    """
    return target_inference(values).task


def default_positive_class(values: pd.Series) -> Any:
    """1 (or True) for a 0/1 or boolean target — what a stream label means without a mapping — else the
    rarer class (usually the event the decision is about).

    >>> default_positive_class(pd.Series([1, 0, 0])), default_positive_class(pd.Series(["ok", "fraud", "ok"]))
    (1, 'fraud')
    """
    strays = set(target_inference(values).strays)
    classes = sorted((native(v) for v in pd.unique(values.dropna()) if category_text(native(v)) not in strays), key=str)
    if {str(c) for c in classes} in ({"0", "1"}, {"False", "True"}, {"0.0", "1.0"}):
        return next(c for c in classes if str(c) in ("1", "True", "1.0"))
    counts = values.map(native).value_counts()
    return min(classes, key=lambda c: (counts.get(c, 0), str(c)))


def draft_card(df: pd.DataFrame, target: str, decision: str | None = None) -> FramingCard:
    """A first card inferred from the data: task, metric, costs, id/time columns, split, empty columns."""
    if target not in df.columns:
        raise OfflineError(f"target column '{target}' is not in the data (columns: {_preview(df.columns)})")
    values = df[target].dropna()
    if values.empty:
        raise OfflineError(f"target column '{target}' is entirely empty")
    if values.nunique() < 2:
        raise OfflineError(f"target '{target}' has a single value ({native(values.iloc[0])!r}); nothing to learn")
    task = target_task(values)
    empty = tuple(c for c in df.columns if c != target and df[c].isna().all())
    time_column = next((c for c in df.columns if c != target and c not in empty and _looks_like_time(df[c])), None)
    ids = tuple(c for c in df.columns if c not in (target, time_column) and c not in empty and _looks_like_id(df[c]))
    positive = None
    if task == "binary":
        positive = default_positive_class(values)
    return FramingCard(
        target=target,
        task=task,
        primary_metric=default_metric(task),
        decision=decision or FramingCard.decision,
        positive_class=positive,
        baseline="mean" if task == "regression" else "majority",
        costs=default_costs(task),
        id_columns=ids,
        time_column=time_column,
        exclude=empty,
        split=SplitPlan(strategy="time" if time_column else "stratified"),
    )


def card_to_dict(card: FramingCard) -> dict[str, Any]:
    """The card as nested TOML-ready sections (``None`` values left out)."""
    problem = {"decision": card.decision, "unit": card.unit, "target": card.target, "task": card.task}
    if card.positive_class is not None:
        problem["positive_class"] = card.positive_class
    metric: dict[str, Any] = {
        "primary": card.primary_metric,
        "baseline": card.baseline,
        "min_improvement": card.min_improvement,
    }
    if card.min_score is not None:
        metric["min_score"] = card.min_score
    columns: dict[str, Any] = {
        "id": list(card.id_columns),
        "exclude": list(card.exclude),
        "categorical": list(card.categorical),
    }
    if card.time_column:
        columns["time"] = card.time_column
    training = dataclasses.asdict(card.training)
    training["candidates"] = list(card.training.candidates)
    return {
        "problem": problem,
        "metric": metric,
        "costs": dict(card.costs),
        "columns": columns,
        "split": dataclasses.asdict(card.split),
        "training": training,
    }


_COMMENTS = {
    "problem": "What the model is for. task: binary | multiclass | regression (inferred from the target).",
    "metric": "primary: f1 | accuracy | roc_auc (classification), rmse | mae (regression).\n"
    "baseline to beat: majority | mean | linear, or a number (the current system's score).\n"
    "Go/no-go: GO when the 95% CI of the test improvement over the baseline is above min_improvement\n"
    "and (if min_score is set) the metric's CI clears min_score.",
    "costs": "Cost of each error type; the binary decision threshold minimises the expected cost.",
    "columns": "id and time columns are never features; exclude drops columns; categorical forces\n"
    "number-coded columns to be categories. A time column makes the split time-ordered.",
    "split": "strategy: time | stratified | random | group (group keeps each id on one side).\n"
    "The test set is locked (hashed) and used once, after model selection.",
    "training": "candidates: linear, hist_gradient_boosting, random_forest, river. Baselines always run.\n"
    "search_rows: rows for hyperparameter search and k-fold CV; river_rows: rows replayed into the\n"
    "River model; bootstrap: resamples for the test-set confidence interval.\n"
    "drop_duplicates: drop exact duplicate rows (kept by default, counted and warned about).",
}


def card_to_toml(card: FramingCard) -> str:
    """The card as commented TOML for the user to edit."""
    sections = card_to_dict(card)
    lines = ["# driftline framing card: edit it, then run `driftline offline train --framing <this file>`.", ""]
    for name, values in sections.items():
        lines.extend(f"# {line}" for line in _COMMENTS[name].splitlines())
        body = tomli_w.dumps({name: values})
        lines.append(body.rstrip())
        if name == "metric" and card.min_score is None:
            lines.append(f"# min_score = ...  (an absolute floor/ceiling on test {card.primary_metric})")
        lines.append("")
    return "\n".join(lines)


def parse_card(text: str, source: str = "the card") -> FramingCard:
    """Read a card from TOML text; raise :class:`OfflineError` naming the problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OfflineError(f"{source} is not valid TOML: {exc}") from None
    return card_from_dict(raw, source)


def load_card(path: Path) -> FramingCard:
    """Read a framing card file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OfflineError(f"cannot read framing card {path}: {_reason(exc)}") from None
    return parse_card(text, str(path))


def card_from_dict(raw: Mapping[str, Any], source: str = "the card") -> FramingCard:
    """Build a card from parsed TOML sections, refusing unknown sections and keys."""
    allowed = {
        "problem": {"decision", "unit", "target", "task", "positive_class"},
        "metric": {"primary", "baseline", "min_improvement", "min_score"},
        "costs": None,
        "columns": {"id", "time", "exclude", "categorical"},
        "split": {f.name for f in dataclasses.fields(SplitPlan)},
        "training": {f.name for f in dataclasses.fields(TrainingPlan)},
    }
    for section, values in raw.items():
        if section not in allowed:
            raise OfflineError(f"{source}: unknown section [{section}]")
        if not isinstance(values, Mapping):
            raise OfflineError(f"{source}: [{section}] must be a table")
        keys = allowed[section]
        extra = sorted(set(values) - keys) if keys is not None else []
        if extra:
            raise OfflineError(f"{source}: unknown key(s) {extra} in [{section}]")
    problem, metric, columns = raw.get("problem", {}), raw.get("metric", {}), raw.get("columns", {})
    if "target" not in problem:
        raise OfflineError(f"{source}: [problem] target is required")
    try:
        task = problem.get("task")
        card = FramingCard(
            target=str(problem["target"]),
            task=task,
            primary_metric=metric.get("primary") or (default_metric(task) if task in TASKS else None),
            decision=str(problem.get("decision", FramingCard.decision)),
            unit=str(problem.get("unit", FramingCard.unit)),
            positive_class=problem.get("positive_class"),
            baseline=metric.get("baseline", "mean" if task == "regression" else "majority"),
            min_improvement=float(metric.get("min_improvement", 0.0)),
            min_score=None if metric.get("min_score") is None else float(metric["min_score"]),
            costs={k: float(v) for k, v in raw.get("costs", default_costs(task) if task in TASKS else {}).items()},
            id_columns=_names(columns.get("id", ()), "[columns] id"),
            time_column=columns.get("time") or None,
            exclude=_names(columns.get("exclude", ()), "[columns] exclude"),
            categorical=_names(columns.get("categorical", ()), "[columns] categorical"),
            split=SplitPlan(**raw.get("split", {})),
            training=_training(raw.get("training", {})),
        )
    except OfflineError as exc:
        raise OfflineError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise OfflineError(f"{source}: {exc}") from None
    return card


def _training(raw: Mapping[str, Any]) -> TrainingPlan:
    values = dict(raw)
    if "candidates" in values:
        values["candidates"] = _names(values["candidates"], "[training] candidates")
    return TrainingPlan(**values)


def _validate(card: FramingCard) -> None:
    if card.task not in TASKS:
        raise OfflineError(f"[problem] task must be one of {list(TASKS)}, got {card.task!r}")
    allowed = REGRESSION_METRICS if card.task == "regression" else CLASSIFICATION_METRICS
    if card.primary_metric not in allowed:
        raise OfflineError(
            f"[metric] primary must be one of {list(allowed)} for {card.task}, got {card.primary_metric!r}"
        )
    if isinstance(card.baseline, str):
        expected = ("mean", "linear") if card.task == "regression" else ("majority", "linear")
        if card.baseline not in expected:
            raise OfflineError(f"[metric] baseline must be one of {list(expected)} or a number, got {card.baseline!r}")
    elif isinstance(card.baseline, bool) or not isinstance(card.baseline, int | float):
        raise OfflineError(f"[metric] baseline must be a name or a number, got {card.baseline!r}")
    expected_costs = set(COST_KEYS[card.task])
    if set(card.costs) != expected_costs:
        raise OfflineError(
            f"[costs] for {card.task} must set exactly {sorted(expected_costs)}, got {sorted(card.costs)}"
        )
    if any(not math.isfinite(v) or v < 0 for v in card.costs.values()):
        raise OfflineError("[costs] must be finite and non-negative")
    plan = card.split
    if plan.strategy not in SPLIT_STRATEGIES:
        raise OfflineError(f"[split] strategy must be one of {list(SPLIT_STRATEGIES)}, got {plan.strategy!r}")
    if plan.strategy == "time" and not card.time_column:
        raise OfflineError("[split] strategy 'time' needs [columns] time")
    if plan.strategy == "group" and not card.id_columns:
        raise OfflineError("[split] strategy 'group' needs an [columns] id column")
    if not 0.05 <= plan.test_size <= 0.5:
        raise OfflineError(f"[split] test_size must be between 0.05 and 0.5, got {plan.test_size}")
    if not 2 <= plan.folds <= 20:
        raise OfflineError(f"[split] folds must be between 2 and 20, got {plan.folds}")
    unknown = [c for c in card.training.candidates if c not in KNOWN_CANDIDATES]
    if unknown or not card.training.candidates:
        raise OfflineError(f"[training] candidates must be among {list(KNOWN_CANDIDATES)}, got {unknown or '[]'}")
    if card.training.search_rows < 100 or card.training.river_rows < 100 or card.training.bootstrap < 50:
        raise OfflineError("[training] search_rows and river_rows must be >= 100 and bootstrap >= 50")
    if card.task == "binary" and card.positive_class is None:
        raise OfflineError("[problem] positive_class is required for a binary task")
    if card.target in (*card.id_columns, card.time_column, *card.exclude):
        raise OfflineError(f"the target '{card.target}' is also named as an id, time or excluded column")


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise OfflineError(f"{where} must be a list of column names")
    return tuple(value)


def _looks_like_time(column: pd.Series) -> bool:
    name = str(column.name).lower()
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if name not in TIME_NAMES and not name.endswith(TIME_SUFFIXES):
        return False
    sample = column.dropna().head(200)
    if pd.api.types.is_numeric_dtype(sample):
        return not pd.api.types.is_bool_dtype(sample)
    return bool(len(sample)) and pd.to_datetime(sample.astype(str), errors="coerce", format="mixed").notna().all()


def _looks_like_id(column: pd.Series) -> bool:
    name = str(column.name).lower()
    named = name == "id" or name.endswith(("_id", " id")) or name.startswith("id_")
    integer_or_text = pd.api.types.is_integer_dtype(column) or not pd.api.types.is_numeric_dtype(column)
    return named and integer_or_text and column.nunique() >= 0.9 * len(column)


def _preview(columns: Any, limit: int = 8) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0]
