# %% [markdown]
# # 02 · Build labels, eras and splits
#
# Turns the data root into `run_dir/manifest.csv`: one row per usable painting with its emotion label (from all its ArtEmis annotations), its era (from its WikiArt style) and **one** split shared by every task, so no emotion test painting is ever seen while training on genre. Near-duplicates (same `phash`) stay in the same split. Every image is checked once; what cannot be used is listed by reason in `prepare_report.json`.

# %% tags=["parameters"]
data_root: str              = "demo"           # a data root or "demo"
run_dir: str                = "runs/demo"
label_rule: str             = "unanimous"      # or "majority" (strictly more than half of the polar votes)
era_map: str                = "chronological"  # or "seed" (the original study's map)
seed: int                   = 0
split_seeds: int            = 1                # K repeated random splits (columns split, split_1, …); training runs on each
train_fraction: float       = 0.70
val_fraction: float         = 0.15
test_fraction: float        = 0.15
group_by: str               = "phash"          # "phash" (near-duplicates together), "artist" (artists and near-duplicates) or "none"
phash_distance: int         = 8                # near-duplicates: phashes at most this many bits apart (measured, see README)
duplicates: str | None      = None             # ArtEmis's wiki_art_duplicate_paintings.pkl (or a CSV of pairs): listed groups
cap_per_era: int | None     = None             # e.g. 2900 for the original's balanced genre subsets (clears the era only)
cap_per_emotion: int | None = None
check_images: bool          = True
export_layout: str | None   = None             # a folder: symlink the original's one-folder-per-class layout there

# %%
# NBVAL_IGNORE_OUTPUT
import matplotlib.pyplot as plt

from artlib import rundir, workflow
from artlib.analysis import plots
from artlib.data.funnel import format_funnel
from artlib.data.manifest import export_layout as export
from artlib.data.prepare import Preparation, PrepareConfig

session = workflow.start(data_root, run_dir)
config = PrepareConfig(label_rule=label_rule, era_map=era_map, seed=seed, split_seeds=split_seeds,
                       fractions=(train_fraction, val_fraction, test_fraction), group_by=group_by,
                       phash_distance=phash_distance, duplicates=duplicates, cap_per_era=cap_per_era,
                       cap_per_emotion=cap_per_emotion, check_images=check_images)
prep = Preparation(session.data_root, config, check_cache=rundir.image_checks(session.run_dir))

# %% [markdown]
# ## Step 1 · Read both CSVs
#
# Encodings, delimiters and columns are checked; anything worked around is noted in the report.

# %%
# NBVAL_CHECK_OUTPUT
prep.read()
{name: {k: notes[k] for k in ("encoding", "delimiter", "rows", "warnings")} for name, notes in prep.report["read"].items()}

# %% [markdown]
# ## Step 2 · Join annotations to paintings
#
# ArtEmis annotations are counted per painting and joined to classes.csv on the painting's name, after repairing
# mojibake and Unicode forms. Unusable rows are counted with their line numbers, and unsafe paths are excluded.

# %%
# NBVAL_CHECK_OUTPUT
prep.join()
print(format_funnel(prep.funnel.frame()))

# %% [markdown]
# ## Step 3 · Labels and eras

# %%
# NBVAL_CHECK_OUTPUT
prep.label()
print(format_funnel(prep.funnel.frame().query("stage == 'labels'")))

# %% [markdown]
# ## Step 4 · Find and check every image
#
# Each file is looked up on disk (tolerant of name spellings, never outside `archive/`) and decoded once; what cannot be
# used is listed by reason.

# %%
# NBVAL_IGNORE_OUTPUT
_ = prep.check_images()  # a progress bar while the files are decoded (none when the checks come from the cache)

# %%
# NBVAL_CHECK_OUTPUT
{reason: paths for reason, paths in prep.report["excluded"].items()}

# %% [markdown]
# ## Step 5 · One split per painting
#
# Paintings that must stay together form groups: near-duplicates (phashes within `phash_distance` bits, joined
# transitively), the groups of a duplicate list (`duplicates`), and with `group_by = "artist"` every artist. The
# groups of all sources are joined, and no group ever straddles two splits. Within that, the split is stratified by
# era × emotion; groups of more than three paintings (artists) are drawn at random, so every split gets large and
# small artists. With `split_seeds = K` there are K such splits (columns `split`, `split_1`, …), so verdicts can
# cover the split as a source of variance. Caps come last and clear only their own task's label: a painting capped
# out of the genre task still serves the emotion task.

# %%
# NBVAL_CHECK_OUTPUT
prep.split()
result = prep.write(session.run_dir)
manifest = result.manifest
print(format_funnel(result.funnel.query("stage in ('groups', 'caps', 'manifest')")))
workflow.grouping_table(result.report)

# %%
# NBVAL_CHECK_OUTPUT
workflow.split_table(manifest)

# %%
# NBVAL_IGNORE_OUTPUT
plots.split_balance(manifest, session.figures / "02_splits.png")
plt.show()

# %% [markdown]
# ## Era × emotion

# %%
# NBVAL_CHECK_OUTPUT
workflow.era_emotion_table(manifest)

# %%
# NBVAL_CHECK_OUTPUT
print(f"positive share of the emotion task: "
      f"{(manifest['emotion'] == 'positive').sum() / (manifest['emotion'] != '').sum():.1%} "
      f"— what always answering 'positive' would score")

# %%
# NBVAL_IGNORE_OUTPUT
if export_layout:
    print(export(manifest, session.archive, export_layout))
print(f"manifest: {len(manifest)} paintings → {session.manifest_path.name} in the run directory")
