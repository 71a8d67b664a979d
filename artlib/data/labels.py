"""Emotion labels from ArtEmis annotations, and eras from WikiArt styles.

Everything here is vectorised pandas: 454k annotations are counted per painting in a
second or two.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

POSITIVE_EMOTIONS = ("amusement", "awe", "contentment", "excitement")
NEGATIVE_EMOTIONS = ("anger", "disgust", "fear", "sadness")
SOMETHING_ELSE = "something else"
EMOTION_POLARITY: dict[str, str] = {
    **{e: "positive" for e in POSITIVE_EMOTIONS},
    **{e: "negative" for e in NEGATIVE_EMOTIONS},
    SOMETHING_ELSE: "something_else",
}
EMOTION_CLASSES = ("negative", "positive")
"""Class order of the emotion task (index 1 = positive, the class F1 is reported for)."""

ARTEMIS_EMOTIONS = (*POSITIVE_EMOTIONS, *NEGATIVE_EMOTIONS, SOMETHING_ELSE)
"""ArtEmis's nine emotions in ArtEmis's own order (artemis/emotions.py): the four positive, the four negative,
then 'something else' — the class order of the nine-emotion task."""
EMOTION_COUNT_COLUMNS = tuple(f"n_{e.replace(' ', '_')}" for e in ARTEMIS_EMOTIONS)
"""Manifest columns holding each painting's votes per emotion (n_amusement … n_something_else)."""

ERAS = ("Renaissance", "Post-Renaissance", "Modern", "Contemporary")
"""Class order of the genre (era) task."""

LABEL_RULES = ("unanimous", "majority")

ERA_MAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "chronological": {
        "Renaissance": ("Early_Renaissance", "High_Renaissance", "Northern_Renaissance", "Mannerism_Late_Renaissance"),
        "Post-Renaissance": ("Baroque", "Rococo", "Romanticism", "Realism", "Ukiyo_e"),
        "Modern": (
            "Impressionism", "Post_Impressionism", "Pointillism", "Symbolism", "Art_Nouveau_Modern", "Fauvism",
            "Expressionism", "Cubism", "Analytical_Cubism", "Synthetic_Cubism", "Naive_Art_Primitivism",
        ),
        "Contemporary": (
            "Abstract_Expressionism", "Action_painting", "Color_Field_Painting", "Minimalism", "Pop_Art",
            "New_Realism", "Contemporary_Realism",
        ),
    },
    # The original study's map, kept to reproduce its numbers: what SEED_GENRE_PATTERNS gives a painting
    # listed under one style (multi-genre paintings follow the patterns, see eras_for_genres).
    "seed": {
        "Renaissance": ("Early_Renaissance", "High_Renaissance", "Northern_Renaissance", "Mannerism_Late_Renaissance"),
        "Post-Renaissance": ("Realism", "Contemporary_Realism", "New_Realism", "Romanticism", "Baroque", "Rococo"),
        "Modern": (
            "Impressionism", "Post_Impressionism", "Expressionism", "Abstract_Expressionism", "Cubism",
            "Analytical_Cubism", "Synthetic_Cubism", "Color_Field_Painting", "Art_Nouveau_Modern", "Fauvism",
            "Naive_Art_Primitivism", "Ukiyo_e",
        ),
        "Contemporary": ("Minimalism", "Pop_Art", "Pointillism", "Symbolism"),
    },
}

KNOWN_STYLES: tuple[str, ...] = tuple(sorted({s for styles in ERA_MAPS["chronological"].values() for s in styles}))
"""The 27 WikiArt styles (folder names under archive/)."""
_STYLE_LOOKUP = {re.sub(r"[\s_-]+", "_", s.lower()): s for s in KNOWN_STYLES}


def canonical_style(name: object) -> str | None:
    """The known WikiArt style a folder or genre name denotes (case, space, dash tolerant), else None."""
    if not isinstance(name, str):
        return None
    return _STYLE_LOOKUP.get(re.sub(r"[\s_-]+", "_", name.strip().lower()))


def era_table(era_map: str = "chronological") -> dict[str, str]:
    """style → era for a named map; styles the map leaves out (seed: Action_painting) are absent."""
    if era_map not in ERA_MAPS:
        raise ValueError(f"unknown era map {era_map!r}; choose one of {', '.join(ERA_MAPS)}")
    return {style: era for era, styles in ERA_MAPS[era_map].items() for style in styles}


def eras_for_styles(styles: pd.Series, era_map: str = "chronological") -> pd.Series:
    """Map canonical style names to eras ("" where the map has no era for the style)."""
    return styles.map(era_table(era_map)).fillna("").astype(str)


SEED_GENRE_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Contemporary", ("Minimalism", "Pop Art", "Pointillism", "Symbolism")),
    ("Modern", ("Impressionism", "Expressionism", "Post-Impressionism", "Surrealism", "Abstract Expressionism",
                "Cubism", "Pop Art", "Abstract Art", "Art Informel", "Color Field Painting", "Neo-Expressionism",
                "Magic Realism", "Lyrical Abstraction", "Art Nouveau Modern", "Fauvism", "Action Painting",
                "Naive Art Primitivism", "Ukiyo", "Colour Field Painting")),
    ("Post-Renaissance", ("Realism", "Romanticism", "Baroque", "Neoclassicism", "Rococo")),
    ("Renaissance", ("Renaissance",)),
)
"""The original study's era rule (its ``Genre_Files.py``): eras tried in this order, the first whose pattern
occurs (case-sensitively) anywhere in classes.csv's raw ``genre`` list-string wins. Hence its quirks:
Pointillism and Symbolism are Contemporary, any *Realism is Post-Renaissance, and WikiArt's "Action painting"
(lower-case p) matches nothing; a painting listed under Realism *and* Impressionism is Modern."""


def eras_for_genres(genres: pd.Series) -> pd.Series:
    """The ``seed`` preset's era of each painting from its genre names (';'-separated style names), "" if none.

    Names are matched with spaces, as classes.csv spells them (``Post_Impressionism`` → ``Post Impressionism``).
    """
    def era_of(text: str) -> str:
        """The first era in the original's order with a pattern in ``text``, else ''."""
        for era, patterns in SEED_GENRE_PATTERNS:
            if any(p in text for p in patterns):
                return era
        return ""

    spelled = genres.fillna("").astype(str).str.replace("_", " ", regex=False)
    return spelled.map(era_of).astype(str)


def normalise_emotion(values: pd.Series) -> pd.Series:
    """Lower-case, trim and unify spelling of ArtEmis emotion strings ('Something_Else' → 'something else')."""
    return values.fillna("").astype(str).str.strip().str.lower().str.replace(r"[\s_]+", " ", regex=True)


def polarity(emotions: pd.Series) -> pd.Series:
    """positive / negative / something_else per annotation; NaN for an unknown emotion string."""
    return normalise_emotion(emotions).map(EMOTION_POLARITY)


def count_emotions(keys: pd.Series, emotions: pd.Series) -> pd.DataFrame:
    """Per painting key: votes per ArtEmis emotion (EMOTION_COUNT_COLUMNS) and the polar sums n_positive, n_negative.

    ``emotions`` are normalised emotion strings (:func:`normalise_emotion`); anything else is not counted.
    """
    codes, uniques = pd.factorize(keys.to_numpy(), sort=True)
    names = emotions.to_numpy()
    columns = {}
    for column, emotion in zip(EMOTION_COUNT_COLUMNS, ARTEMIS_EMOTIONS):
        columns[column] = np.bincount(codes[names == emotion], minlength=len(uniques)).astype("int64")
    frame = pd.DataFrame(columns, index=pd.Index(uniques, name="key"))
    frame["n_positive"] = frame[[f"n_{e}" for e in POSITIVE_EMOTIONS]].sum(axis=1)
    frame["n_negative"] = frame[[f"n_{e}" for e in NEGATIVE_EMOTIONS]].sum(axis=1)
    return frame


def apply_label_rule(counts: pd.DataFrame, rule: str = "unanimous") -> tuple[pd.Series, pd.Series]:
    """Emotion label per painting and, for unlabelled ones, why: ('positive'|'negative'|'', reason).

    unanimous: positive if >=1 positive and 0 negative annotations, negative in the mirror case.
    majority: the polarity with strictly more than half of the polar (non-something-else) votes.
    Reasons for '': 'mixed' (unanimous: both polarities), 'tie' (majority: equal votes),
    'only_something_else' (no polar vote at all).
    """
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; choose one of {', '.join(LABEL_RULES)}")
    pos = counts["n_positive"].to_numpy()
    neg = counts["n_negative"].to_numpy()
    if rule == "unanimous":
        is_pos = (pos >= 1) & (neg == 0)
        is_neg = (neg >= 1) & (pos == 0)
        undecided = "mixed"
    else:
        is_pos = 2 * pos > pos + neg
        is_neg = 2 * neg > pos + neg
        undecided = "tie"
    label = np.where(is_pos, "positive", np.where(is_neg, "negative", ""))
    reason = np.where(label != "", "", np.where(pos + neg == 0, "only_something_else", undecided))
    return (pd.Series(label, index=counts.index, name="emotion"),
            pd.Series(reason, index=counts.index, name="emotion_dropped"))
