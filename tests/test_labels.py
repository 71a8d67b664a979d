"""artlib.data.labels: polarity counting, the two label rules, the two era maps, style names."""

from __future__ import annotations

import pandas as pd
import pytest

from artlib.data.labels import (
    KNOWN_STYLES, apply_label_rule, canonical_style, count_emotions, era_table, eras_for_styles,
    normalise_emotion, polarity,
)

# design.md §2, written out by hand (not derived from artlib).
CHRONOLOGICAL = {
    "Early_Renaissance": "Renaissance", "High_Renaissance": "Renaissance", "Northern_Renaissance": "Renaissance",
    "Mannerism_Late_Renaissance": "Renaissance",
    "Baroque": "Post-Renaissance", "Rococo": "Post-Renaissance", "Romanticism": "Post-Renaissance",
    "Realism": "Post-Renaissance", "Ukiyo_e": "Post-Renaissance",
    "Impressionism": "Modern", "Post_Impressionism": "Modern", "Pointillism": "Modern", "Symbolism": "Modern",
    "Art_Nouveau_Modern": "Modern", "Fauvism": "Modern", "Expressionism": "Modern", "Cubism": "Modern",
    "Analytical_Cubism": "Modern", "Synthetic_Cubism": "Modern", "Naive_Art_Primitivism": "Modern",
    "Abstract_Expressionism": "Contemporary", "Action_painting": "Contemporary",
    "Color_Field_Painting": "Contemporary", "Minimalism": "Contemporary", "Pop_Art": "Contemporary",
    "New_Realism": "Contemporary", "Contemporary_Realism": "Contemporary",
}
SEED = {
    "Minimalism": "Contemporary", "Pop_Art": "Contemporary", "Pointillism": "Contemporary",
    "Symbolism": "Contemporary",
    "Impressionism": "Modern", "Post_Impressionism": "Modern", "Expressionism": "Modern",
    "Abstract_Expressionism": "Modern", "Cubism": "Modern", "Analytical_Cubism": "Modern",
    "Synthetic_Cubism": "Modern", "Color_Field_Painting": "Modern", "Art_Nouveau_Modern": "Modern",
    "Fauvism": "Modern", "Naive_Art_Primitivism": "Modern", "Ukiyo_e": "Modern",
    "Realism": "Post-Renaissance", "Contemporary_Realism": "Post-Renaissance", "New_Realism": "Post-Renaissance",
    "Romanticism": "Post-Renaissance", "Baroque": "Post-Renaissance", "Rococo": "Post-Renaissance",
    "Early_Renaissance": "Renaissance", "High_Renaissance": "Renaissance", "Northern_Renaissance": "Renaissance",
    "Mannerism_Late_Renaissance": "Renaissance",
    "Action_painting": "",
}
ALL_STYLES = sorted(CHRONOLOGICAL)

# (pattern name, n_positive, n_negative, n_something_else) → (unanimous label, reason), (majority label, reason)
PATTERNS = [
    ("one positive", 1, 0, 0, ("positive", ""), ("positive", "")),
    ("positives and something else", 3, 0, 2, ("positive", ""), ("positive", "")),
    ("one negative", 0, 1, 0, ("negative", ""), ("negative", "")),
    ("negatives and something else", 0, 4, 5, ("negative", ""), ("negative", "")),
    ("mixed, positive majority", 3, 1, 0, ("", "mixed"), ("positive", "")),
    ("mixed, negative majority", 1, 2, 3, ("", "mixed"), ("negative", "")),
    ("tie", 2, 2, 0, ("", "mixed"), ("", "tie")),
    ("tie with something else", 1, 1, 4, ("", "mixed"), ("", "tie")),
    ("only something else", 0, 0, 3, ("", "only_something_else"), ("", "only_something_else")),
    ("no annotations", 0, 0, 0, ("", "only_something_else"), ("", "only_something_else")),
    ("large positive majority", 9, 1, 0, ("", "mixed"), ("positive", "")),
    ("bare majority", 3, 2, 9, ("", "mixed"), ("positive", "")),
]


def counts_frame(rows: list[tuple]) -> pd.DataFrame:
    """A counts frame (the polar columns count_emotions returns) from (key, n_pos, n_neg, n_se) tuples."""
    return pd.DataFrame([r[1:4] for r in rows], columns=["n_positive", "n_negative", "n_something_else"],
                        index=pd.Index([r[0] for r in rows], name="key"))


@pytest.mark.parametrize("rule, which", [("unanimous", 4), ("majority", 5)])
def test_label_rules_on_hand_built_patterns(rule: str, which: int) -> None:
    """Each annotation pattern gets the exact label and drop reason of each rule."""
    counts = counts_frame(PATTERNS)
    label, reason = apply_label_rule(counts, rule)
    assert label.to_dict() == {p[0]: p[which][0] for p in PATTERNS}
    assert reason.to_dict() == {p[0]: p[which][1] for p in PATTERNS}
    assert label.name == "emotion" and reason.name == "emotion_dropped"


def test_unknown_label_rule() -> None:
    """An unknown rule is a ValueError listing the valid ones."""
    with pytest.raises(ValueError, match="unanimous, majority"):
        apply_label_rule(counts_frame(PATTERNS), "plurality")


def test_polarity_of_every_emotion() -> None:
    """The eight emotions and 'something else' map to their polarity; anything else is NaN."""
    emotions = pd.Series(["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness",
                          "something else", "joy", "", None])
    assert polarity(emotions).tolist()[:9] == ["positive"] * 4 + ["negative"] * 4 + ["something_else"]
    assert polarity(emotions).iloc[9:].isna().all()


@pytest.mark.parametrize("raw, expected", [
    ("Something_Else", "something else"), ("  AWE ", "awe"), ("something   else", "something else"),
    ("Fear", "fear"), ("something__else", "something else"),
])
def test_normalise_emotion(raw: str, expected: str) -> None:
    """Case, padding, underscores and repeated spaces are unified."""
    assert normalise_emotion(pd.Series([raw])).tolist() == [expected]


def test_count_emotions_exact() -> None:
    """Votes per emotion and the polar sums are exact; unknown emotions are not counted; keys come back sorted."""
    rows = [("b", "awe"), ("a", "fear"), ("b", "something else"), ("a", "anger"), ("b", "amusement"),
            ("c", "something else"), ("a", "joy"), ("b", "Sadness"), ("d", "bogus"), ("b", "awe")]
    keys = pd.Series([r[0] for r in rows])
    counts = count_emotions(keys, normalise_emotion(pd.Series([r[1] for r in rows])))
    assert counts.index.tolist() == ["a", "b", "c", "d"]
    polar = counts[["n_positive", "n_negative", "n_something_else"]].to_dict(orient="index")
    assert polar == {
        "a": {"n_positive": 0, "n_negative": 2, "n_something_else": 0},
        "b": {"n_positive": 3, "n_negative": 1, "n_something_else": 1},
        "c": {"n_positive": 0, "n_negative": 0, "n_something_else": 1},
        "d": {"n_positive": 0, "n_negative": 0, "n_something_else": 0},
    }
    assert counts.loc["b", ["n_amusement", "n_awe", "n_sadness"]].tolist() == [1, 2, 1]
    assert counts.loc["a", ["n_anger", "n_fear"]].tolist() == [1, 1]
    assert all(str(t) == "int64" for t in counts.dtypes)


def test_counts_then_rules_end_to_end() -> None:
    """Annotations → counts → labels for both rules, on the patterns of the design notes."""
    ann = {"unan_pos": ["awe", "contentment", "something else"], "unan_neg": ["fear", "sadness"],
           "mixed_pos": ["awe", "awe", "fear"], "tie": ["awe", "fear", "something else"],
           "only_se": ["something else", "something else"]}
    keys = pd.Series([k for k, es in ann.items() for _ in es])
    counts = count_emotions(keys, normalise_emotion(pd.Series([e for es in ann.values() for e in es])))
    unan, unan_why = apply_label_rule(counts, "unanimous")
    maj, maj_why = apply_label_rule(counts, "majority")
    assert unan.to_dict() == {"mixed_pos": "", "only_se": "", "tie": "", "unan_neg": "negative", "unan_pos": "positive"}
    assert unan_why.to_dict() == {"mixed_pos": "mixed", "only_se": "only_something_else", "tie": "mixed",
                                  "unan_neg": "", "unan_pos": ""}
    assert maj.to_dict() == {"mixed_pos": "positive", "only_se": "", "tie": "", "unan_neg": "negative",
                             "unan_pos": "positive"}
    assert maj_why.to_dict() == {"mixed_pos": "", "only_se": "only_something_else", "tie": "tie",
                                 "unan_neg": "", "unan_pos": ""}


def test_there_are_27_known_styles() -> None:
    """artlib knows exactly the 27 WikiArt styles of the design notes."""
    assert sorted(KNOWN_STYLES) == ALL_STYLES
    assert len(ALL_STYLES) == 27


@pytest.mark.parametrize("style", ALL_STYLES)
def test_chronological_era_of_every_style(style: str) -> None:
    """The default map puts each style in the era design.md §2 gives it."""
    assert era_table("chronological")[style] == CHRONOLOGICAL[style]
    assert eras_for_styles(pd.Series([style]), "chronological").tolist() == [CHRONOLOGICAL[style]]


@pytest.mark.parametrize("style", ALL_STYLES)
def test_seed_era_of_every_style(style: str) -> None:
    """The original study's map, quirks included (Action_painting unmapped → '')."""
    assert era_table("seed").get(style, "") == SEED[style]
    assert eras_for_styles(pd.Series([style]), "seed").tolist() == [SEED[style]]


def test_era_tables_are_complete() -> None:
    """chronological maps all 27 styles; seed maps all but Action_painting."""
    assert era_table("chronological") == CHRONOLOGICAL
    assert era_table("seed") == {s: e for s, e in SEED.items() if e}


@pytest.mark.parametrize("style, expected", [
    ("Pointillism", "Contemporary"), ("Symbolism", "Contemporary"), ("Contemporary_Realism", "Post-Renaissance"),
    ("New_Realism", "Post-Renaissance"), ("Action_painting", ""), ("Ukiyo_e", "Modern"),
    ("Abstract_Expressionism", "Modern"), ("Color_Field_Painting", "Modern"),
])
def test_seed_quirks(style: str, expected: str) -> None:
    """The named quirks of the original map are kept in 'seed'."""
    assert eras_for_styles(pd.Series([style]), "seed").iloc[0] == expected


def test_eras_for_unknown_styles_are_empty() -> None:
    """Unknown or missing styles get '' (never NaN)."""
    out = eras_for_styles(pd.Series(["Fantasy_Art", None, "Baroque"]), "chronological")
    assert out.tolist() == ["", "", "Post-Renaissance"]


def test_unknown_era_map() -> None:
    """An unknown era map is a ValueError naming the valid ones."""
    with pytest.raises(ValueError, match="chronological, seed"):
        era_table("alphabetical")


@pytest.mark.parametrize("name, expected", [
    ("Post_Impressionism", "Post_Impressionism"), ("Post Impressionism", "Post_Impressionism"),
    ("post-impressionism", "Post_Impressionism"), ("  POST_IMPRESSIONISM ", "Post_Impressionism"),
    ("Post  -  Impressionism", "Post_Impressionism"), ("ukiyo e", "Ukiyo_e"), ("Action Painting", "Action_painting"),
    ("art nouveau modern", "Art_Nouveau_Modern"), ("Mannerism Late Renaissance", "Mannerism_Late_Renaissance"),
    ("Fantasy_Art", None), ("Impressionisms", None), ("", None), (None, None), (42, None),
    ("Baroque/x.jpg", None),
])
def test_canonical_style_tolerance(name: object, expected: str | None) -> None:
    """Style names are matched regardless of case, spaces, dashes and underscores; others give None."""
    assert canonical_style(name) == expected


@pytest.mark.parametrize("style", ALL_STYLES)
def test_canonical_style_of_genre_spelling(style: str) -> None:
    """classes.csv's genre spelling (spaces for underscores) maps back to every folder name."""
    assert canonical_style(style.replace("_", " ")) == style
    assert canonical_style(style.lower()) == style
