"""The tasks a stage can learn, one frozen :class:`Task` each: the only module that tells tasks apart.

A task says which classes it has, how it takes paintings and targets from the manifest (a label column, or vote
counts whose shares are the target), its loss, which test paintings count for its metrics, its trivial baselines
and extra metrics, and what prediction prints. Everything else asks the task, never its name:

    GENRE.classes, EMOTION.column, EMOTION9.count_columns, task_of(stage).loss
    get_task(results_row["task"])          # results.csv keeps the task's name, a plain string

A new task is one more ``Task(...)`` in :data:`TASKS` and its stages in :mod:`artlib.stages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from artlib.data.labels import ARTEMIS_EMOTIONS, EMOTION_CLASSES, EMOTION_COUNT_COLUMNS, ERAS


FrameLike = TypeVar("FrameLike", bound=Any)  # a pandas DataFrame (pandas is not imported here)


@dataclass(frozen=True)
class Task:
    """One task: its classes, where its paintings and targets come from, how it is trained, scored and printed."""

    name: str  # results.csv's 'task' and the stages' Stage.task
    title: str  # the original tables' "Output Observed" text
    classes: tuple[str, ...]  # in label-index order
    column: str = ""  # the manifest column holding a hard label ('' for a distribution task)
    count_columns: tuple[str, ...] = ()  # a distribution task: the manifest's vote counts its target is normalised from
    loss: str = "cross_entropy"  # 'cross_entropy' (class-weighted when asked) or 'soft_kl' (KL to the vote shares)
    era_prior: bool = True  # whether the era-prior baseline (the majority class per era) is a baseline of this task
    predicts: str = ""  # the column prediction prints this task's answer under
    binary_emotion: bool = False  # the study's positive/negative task (the one predict answers, per-era tables use)

    @property
    def soft(self) -> bool:
        """Whether the target is a distribution (vote shares) rather than one class."""
        return bool(self.count_columns)

    @property
    def scores_subset(self) -> bool:
        """Whether only some test paintings count for its metrics (a distribution task: a > 50% emotion)."""
        return self.soft

    @property
    def extra_metrics(self) -> bool:
        """Whether results rows carry ArtEmis's distribution metrics (see artlib.metrics.emotion9_metrics)."""
        return self.soft

    def is_task_of(self, name: object) -> bool:
        """Whether a task name (a Stage.task, a results.csv 'task' value) names this task."""
        return str(name) == self.name


GENRE = Task("genre", "Genre", ERAS, column="era", era_prior=False, predicts="era")
EMOTION = Task("emotion", "Emotions Evoked", EMOTION_CLASSES, column="emotion", predicts="emotion",
               binary_emotion=True)
EMOTION9 = Task("emotion9", "Nine-emotion distribution", ARTEMIS_EMOTIONS, count_columns=EMOTION_COUNT_COLUMNS,
                loss="soft_kl", predicts="top_emotion")
TASKS: dict[str, Task] = {t.name: t for t in (GENRE, EMOTION, EMOTION9)}
"""Every task by name: the one registry."""


def get_task(name: str | Task) -> Task:
    """The task of this name (a Task passes through); a clear error for an unknown one."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[str(name)]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}") from None


def find_task(name: object) -> Task | None:
    """The task of this name, or None for a name no task has (e.g. read from an old or foreign results.csv)."""
    return TASKS.get(str(name))


def rows_of(frame: FrameLike, task: str | Task) -> FrameLike:
    """The rows of a table (results.csv, a comparison) whose 'task' column names this task."""
    return frame.loc[frame["task"].map(get_task(task).is_task_of).astype(bool)]
