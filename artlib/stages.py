"""The study's training stages and the comparisons that judge them, as data.

A stage is a name, a task, the blocks it trains and where its backbone starts from: the
pretrained weights, or another stage's trained backbone (carried over with a fresh head).
A comparison pairs a stage with the stage it is judged against; besides the study's own
comparisons, artlib adds *matched controls*: the same blocks trained in the same order on
emotion only, so that a difference can be put down to genre and not to adapting conv4 to
paintings at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from artlib.tasks import Task, get_task

CONFIGURATION_NAMES = {1: "sequential", 2: "simultaneous", 3: "emotion only", 4: "nine emotions, sequential",
                       5: "nine emotions, simultaneous", 6: "linear probe"}
STUDY_CONFIGURATIONS = (1, 2, 3)
"""The original study's configurations (its Tables 1–3); 4 and 5 ask its question on ArtEmis's nine emotions; 6 is
the linear-probe baseline (no block trains: a logistic regression on the frozen backbone's pooled features)."""


@dataclass(frozen=True)
class Stage:
    """One training stage of the study (design.md §1)."""

    name: str
    configuration: int
    task: str  # a task's name (artlib.tasks): 'genre', 'emotion' or 'emotion9'; ``spec`` is the Task
    blocks: tuple[str, ...]  # trainable backbone blocks
    init_from: str | None = None  # None: the pretrained backbone; else the stage whose backbone is carried
    process: str = ""  # the original tables' "Fine-tuning Process" text
    layers: str = ""  # the original tables' "Layers Fine Tuned" text
    compare_with: str | None = None  # the emotion-only baseline this stage is judged against

    @property
    def spec(self) -> Task:
        """The stage's task (classes, selection, loss, scoring), resolved through the one registry."""
        return get_task(self.task)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of the stage's task, in label-index order."""
        return self.spec.classes

    @property
    def output(self) -> str:
        """The original tables' "Output Observed" text."""
        return self.spec.title

    @property
    def probe(self) -> bool:
        """Whether this is a linear probe: no block trains, a logistic-regression head is fitted on frozen features."""
        return not self.blocks

    @property
    def trained_blocks(self) -> str:
        """'conv4', 'conv5', 'conv4+conv5', or 'head' for a linear probe (results.csv)."""
        return "+".join(self.blocks) or "head"

    @property
    def configuration_name(self) -> str:
        """'1 sequential', '2 simultaneous' or '3 emotion only'."""
        return f"{self.configuration} {CONFIGURATION_NAMES[self.configuration]}"


_ALL = (
    Stage("genre_conv4", 1, "genre", ("conv4",), None, "Trained on Genre (transient)", "Conv4"),
    Stage("emotion_conv5", 1, "emotion", ("conv5",), None, "Trained on Emotions", "Conv5"),
    Stage("genre_conv4_then_emotion_conv5", 1, "emotion", ("conv5",), "genre_conv4", "Trained on Genre then Emotions",
          "Conv4 then Conv5", compare_with="emotion_conv5"),
    Stage("genre_conv45", 2, "genre", ("conv4", "conv5"), None, "Trained on Genre (transient)", "Conv4 & Conv5"),
    Stage("emotion_conv45", 2, "emotion", ("conv4", "conv5"), None, "Trained on Emotions", "Conv4 & Conv5"),
    Stage("genre_conv45_then_emotion_conv45", 2, "emotion", ("conv4", "conv5"), "genre_conv45",
          "Trained on Genre then Emotions", "Conv4 & Conv5", compare_with="emotion_conv45"),
    Stage("emotion_conv45_then_emotion_conv45", 2, "emotion", ("conv4", "conv5"), "emotion_conv45",
          "Trained on Emotions, then again (matched control)", "Conv4 & Conv5, twice"),
    Stage("emotion_conv4", 3, "emotion", ("conv4",), None, "Trained on Emotions", "Conv4"),
    Stage("emotion_conv4_then_emotion_conv5", 3, "emotion", ("conv5",), "emotion_conv4", "Trained on Emotions",
          "Conv4 then Conv5", compare_with="emotion_conv4"),
    Stage("emotion9_conv5", 4, "emotion9", ("conv5",), None, "Trained on nine emotions", "Conv5"),
    Stage("genre_conv4_then_emotion9_conv5", 4, "emotion9", ("conv5",), "genre_conv4",
          "Trained on Genre then nine emotions", "Conv4 then Conv5", compare_with="emotion9_conv5"),
    Stage("emotion9_conv4", 4, "emotion9", ("conv4",), None, "Trained on nine emotions", "Conv4"),
    Stage("emotion9_conv4_then_emotion9_conv5", 4, "emotion9", ("conv5",), "emotion9_conv4",
          "Trained on nine emotions, conv4 then conv5 (matched control)", "Conv4 then Conv5"),
    Stage("emotion9_conv45", 5, "emotion9", ("conv4", "conv5"), None, "Trained on nine emotions", "Conv4 & Conv5"),
    Stage("genre_conv45_then_emotion9_conv45", 5, "emotion9", ("conv4", "conv5"), "genre_conv45",
          "Trained on Genre then nine emotions", "Conv4 & Conv5", compare_with="emotion9_conv45"),
    Stage("emotion9_conv45_then_emotion9_conv45", 5, "emotion9", ("conv4", "conv5"), "emotion9_conv45",
          "Trained on nine emotions, then again (matched control)", "Conv4 & Conv5, twice"),
    Stage("genre_probe", 6, "genre", (), None, "Linear probe on genre", "None (logistic regression head)"),
    Stage("emotion_probe", 6, "emotion", (), None, "Linear probe on emotions", "None (logistic regression head)"),
    Stage("emotion9_probe", 6, "emotion9", (), None, "Linear probe on nine emotions", "None (logistic regression head)"),
)
STAGES: dict[str, Stage] = {s.name: s for s in _ALL}
"""Every stage by name: the study's eight, in its order, the matched control artlib adds, then the nine-emotion
stages (configurations 4 and 5), which ask the study's question on ArtEmis's own task, then the linear probes
(configuration 6, named ``<task>_probe``)."""
CONFIGURATIONS: dict[int, tuple[str, ...]] = {
    c: tuple(s.name for s in _ALL if s.configuration == c) for c in CONFIGURATION_NAMES
}


def get_stage(name: str, option: str = "stage name") -> Stage:
    """The stage called ``name``; a DataError naming ``option`` and the closest names if there is none."""
    if name not in STAGES:
        from artlib.errors import DataError, no_such

        raise DataError(no_such(option, name, "stage", list(STAGES)))
    return STAGES[name]


def dependency_chain(name: str) -> list[Stage]:
    """The stages that must exist before ``name`` can run, then ``name`` itself (sources first)."""
    chain: list[Stage] = []
    stage: Stage | None = get_stage(name)
    while stage is not None:
        chain.insert(0, stage)
        stage = get_stage(stage.init_from) if stage.init_from else None
    return chain


ORIGINAL = "original"
MATCHED = "matched control"
SEQUENTIAL_VS_SIMULTANEOUS = "sequential vs simultaneous"
VS_PROBE = "vs linear probe"
BINARY = "binary"
NINE_EMOTION = "nine-emotion"
LINEAR_PROBE = "linear-probe"
NINE_EMOTION_PROBE = "nine-emotion-probe"


@dataclass(frozen=True)
class Comparison:
    """Two stages compared on the same test paintings: does ``stage`` beat ``baseline``?"""

    name: str
    stage: str
    baseline: str
    kind: str  # ORIGINAL (the study's own), MATCHED (isolates genre), SEQUENTIAL_VS_SIMULTANEOUS, VS_PROBE
    question: str
    family: str = BINARY  # its Holm family (BINARY: notebook 06; NINE_EMOTION: 08; the probe families: 09)


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("genre → conv5 vs matched control", "genre_conv4_then_emotion_conv5",
               "emotion_conv4_then_emotion_conv5", MATCHED,
               "Does training conv4 on genre help more than training conv4 on emotion (same blocks, same order)?"),
    Comparison("genre → conv5 vs the study's baseline", "genre_conv4_then_emotion_conv5", "emotion_conv5", ORIGINAL,
               "Does genre_conv4 → emotion_conv5 beat emotion_conv5 (whose conv4 was never trained)?"),
    Comparison("genre → conv4+5 vs matched control", "genre_conv45_then_emotion_conv45",
               "emotion_conv45_then_emotion_conv45", MATCHED,
               "Does training conv4+conv5 on genre first help more than training them on emotion first?"),
    Comparison("genre → conv4+5 vs the study's baseline", "genre_conv45_then_emotion_conv45", "emotion_conv45",
               ORIGINAL, "Does genre_conv45 → emotion_conv45 beat emotion_conv45 (trained once)?"),
    Comparison("conv4 → conv5 vs conv4 (emotion only)", "emotion_conv4_then_emotion_conv5", "emotion_conv4", ORIGINAL,
               "Does training conv5 after conv4 (both on emotion) beat conv4 alone?"),
    Comparison("sequential vs simultaneous, with genre", "genre_conv4_then_emotion_conv5",
               "genre_conv45_then_emotion_conv45", SEQUENTIAL_VS_SIMULTANEOUS,
               "With a genre step, does training conv4 then conv5 beat training both together (the study's claim 2)?"),
    Comparison("sequential vs simultaneous, emotion only", "emotion_conv4_then_emotion_conv5",
               "emotion_conv45_then_emotion_conv45", SEQUENTIAL_VS_SIMULTANEOUS,
               "Without genre, does training conv4 then conv5 beat training both together twice?"),
)
"""Every comparison notebook 06 reports; Holm's correction runs over all of them (those that ran)."""

PROBE_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("fine-tuned conv5 vs linear probe", "emotion_conv5", "emotion_probe", VS_PROBE,
               "Does fine-tuning conv5 on emotion beat a logistic regression on the frozen backbone's features?",
               LINEAR_PROBE),
    Comparison("genre → conv5 vs linear probe", "genre_conv4_then_emotion_conv5", "emotion_probe", VS_PROBE,
               "Does genre_conv4 → emotion_conv5 beat a logistic regression on the frozen backbone's features?",
               LINEAR_PROBE),
)
"""Comparisons against the linear probe (notebook 09): their own Holm family, so the study's binary family keeps its
fixed seven whatever else has run."""

EMOTION9_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("nine emotions: genre → conv5 vs matched control", "genre_conv4_then_emotion9_conv5",
               "emotion9_conv4_then_emotion9_conv5", MATCHED,
               "On the nine-emotion task, does training conv4 on genre help more than training it on emotions?", NINE_EMOTION),
    Comparison("nine emotions: genre → conv5 vs conv5 alone", "genre_conv4_then_emotion9_conv5", "emotion9_conv5",
               ORIGINAL, "On the nine-emotion task, does genre_conv4 → conv5 beat conv5 alone?", NINE_EMOTION),
    Comparison("nine emotions: genre → conv4+5 vs matched control", "genre_conv45_then_emotion9_conv45",
               "emotion9_conv45_then_emotion9_conv45", MATCHED,
               "On the nine-emotion task, does genre first help conv4+conv5 more than emotions first?", NINE_EMOTION),
    Comparison("nine emotions: genre → conv4+5 vs conv4+5 once", "genre_conv45_then_emotion9_conv45",
               "emotion9_conv45", ORIGINAL, "On the nine-emotion task, does genre_conv45 → conv4+5 beat training once?",
               NINE_EMOTION),
    Comparison("nine emotions: sequential vs simultaneous, with genre", "genre_conv4_then_emotion9_conv5",
               "genre_conv45_then_emotion9_conv45", SEQUENTIAL_VS_SIMULTANEOUS,
               "On the nine-emotion task, does conv4 then conv5 beat both together after genre?", NINE_EMOTION),
)
"""Notebook 08's comparisons (their own Holm family): accuracy of the top emotion on test paintings where one
emotion has more than half of the votes (ArtEmis's metric)."""

EMOTION9_PROBE_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("nine emotions: fine-tuned conv5 vs linear probe", "emotion9_conv5", "emotion9_probe", VS_PROBE,
               "On the nine-emotion task, does fine-tuning conv5 beat a logistic regression on frozen features?",
               NINE_EMOTION_PROBE),
    Comparison("nine emotions: genre → conv5 vs linear probe", "genre_conv4_then_emotion9_conv5", "emotion9_probe",
               VS_PROBE, "On the nine-emotion task, does genre_conv4 → conv5 beat a linear probe?", NINE_EMOTION_PROBE),
)
"""The nine-emotion comparisons with the linear probe: their own Holm family, like the binary ones."""

FAMILIES: dict[str, tuple[Comparison, ...]] = {BINARY: COMPARISONS, NINE_EMOTION: EMOTION9_COMPARISONS,
                                               LINEAR_PROBE: PROBE_COMPARISONS, NINE_EMOTION_PROBE: EMOTION9_PROBE_COMPARISONS}
FAMILY_TASK = {BINARY: "emotion", NINE_EMOTION: "emotion9", LINEAR_PROBE: "emotion", NINE_EMOTION_PROBE: "emotion9"}
"""Every Holm family by name: Holm controls the family-wise error within each; verdicts.csv rows are unique per
(family, comparison)."""
