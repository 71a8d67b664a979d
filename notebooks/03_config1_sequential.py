# %% [markdown]
# # 03 · Configuration 1 — sequential: genre on conv4, then emotion on conv5
#
# Stage 1 fine-tunes conv4 (torchvision `layer3`) on the four eras; stage 3 carries that backbone over, puts a fresh emotion head on it and fine-tunes conv5 (`layer4`) on positive/negative. The baseline, stage 2, fine-tunes conv5 on emotion straight from the pretrained backbone. Everything below the trainable blocks is frozen (BatchNorm included) and computed once (the feature cache).

# %% tags=["parameters"]
data_root: str             = "demo"       # a data root (archive/, data_gen/, data_em/) or "demo"
run_dir: str               = "runs/demo"  # where results are read and written
image_size: int            = 64           # pixels (the study: 224)
epochs: int                = 4            # the study: 100
batch_size: int            = 32
lr: float                  = 1e-4         # Adam learning rate (the study: 1e-6)
weight_decay: float        = 0.0
seeds: list[int]           = [0, 1]       # one training run per seed, for spread and significance
split_seeds: int | None    = None         # train on the manifest's first K splits (None: every split notebook 02 wrote)
backbone: str              = "resnet50"   # the study's; or resnet34, convnext_tiny, vit_b16, clip_vit_b16 (README: Backbones)
weights: str               = "auto"       # "imagenet", "self-supervised", "none", a .pth/.safetensors path, or "auto"
device: str                = "auto"       # "cuda", "mps", "cpu" or "auto"
precision: str             = "auto"       # "bf16" where the hardware has it natively, else "fp32"
augment: bool              = False        # flips and small affine changes (turns the feature cache off)
feature_cache: bool | None = None         # run the frozen blocks once and cache their output (None: whenever augment is off)
class_weights: bool        = True         # per-class weights against imbalance
monitor: str               = "val_loss"   # early stopping metric: val_loss, val_accuracy, val_f1, val_balanced_accuracy
patience: int              = 3            # epochs without improvement before stopping
force: bool                = False        # retrain stages that already finished with these settings
executor: str              = "local"      # "local" (this kernel) or "ray" (each stage-run a Ray task; see README, cluster)

# %%
# NBVAL_IGNORE_OUTPUT
from artlib import workflow

session = workflow.start(data_root, run_dir)
training = workflow.training(session, globals())  # the parameters cell's values; a manifest if 02 has not run
training.config

# %% [markdown]
# ### Stage `genre_conv4`

# %%
# NBVAL_CHECK_OUTPUT
workflow.describe_stage("genre_conv4", training)

# %%
# NBVAL_IGNORE_OUTPUT
workflow.train_stage(training, "genre_conv4")

# %% [markdown]
# ### Stage `emotion_conv5`

# %%
# NBVAL_CHECK_OUTPUT
workflow.describe_stage("emotion_conv5", training)

# %%
# NBVAL_IGNORE_OUTPUT
workflow.train_stage(training, "emotion_conv5")

# %% [markdown]
# ### Stage `genre_conv4_then_emotion_conv5`

# %%
# NBVAL_CHECK_OUTPUT
workflow.describe_stage("genre_conv4_then_emotion_conv5", training)

# %%
# NBVAL_IGNORE_OUTPUT
workflow.train_stage(training, "genre_conv4_then_emotion_conv5")

# %% [markdown]
# ## The configuration's table, in the original study's format
#
# Mean ± standard deviation over seeds, with an interval that treats seeds and test paintings as random; the last rows are what always answering the majority class, and answering each era's majority emotion, score on the same test paintings (the original reported neither). Notebook 06 decides what the differences show.

# %%
# NBVAL_IGNORE_OUTPUT
workflow.configuration_table(session, 1, backbone)
