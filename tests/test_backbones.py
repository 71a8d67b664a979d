"""Backbones as data: each one's blocks, its weights (files, caches, offline), training on it, the linear probe.

Everything runs offline on random or test-made weights; resnet50 must give 0.2's numbers exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from artlib import rundir
from artlib.cli import main
from artlib.errors import CheckpointError
from artlib.models import weights as backbone_weights
from artlib.models.backbone import ArtNet
from artlib.models.networks import create_backbone
from artlib.models.registry import BACKBONES, HEAD, get_backbone
from artlib.models.stored import load_stage_model
from artlib.models.weights import random_weights, resolve_weights
from artlib.results import read_results
from artlib.train.config import TrainConfig
from artlib.train.grid import Executor
from conftest import TINY, train_one

BLOCKS = {  # backbone: (conv4 parameters, conv5 parameters, pooled features)
    "resnet50": (7_098_368, 14_964_736, 2048),
    "resnet34": (6_822_400, 13_114_368, 512),
    "convnext_tiny": (11_112_960, 15_472_128, 768),
    "vit_b16": (14_175_744, 7_089_408, 768),
    "clip_vit_b16": (14_175_744, 7_089_408, 768),
}
TIMM = [b for b in BACKBONES if b != "resnet50"]


def meta_model(name: str, classes: int = 2) -> ArtNet:
    """The backbone with a head, built on the meta device (shapes only, nothing allocated)."""
    spec = get_backbone(name)
    with torch.device("meta"):
        return ArtNet(create_backbone(spec, 224), classes, spec=spec)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_declares_its_blocks_with_pinned_parameter_counts(name: str) -> None:
    """conv4/conv5 hold exactly the pinned parameters; the five blocks own every backbone parameter exactly once."""
    model = meta_model(name)
    table = model.parameter_table().set_index("block")
    conv4, conv5, features = BLOCKS[name]
    assert (table.loc["conv4", "parameters"], table.loc["conv5", "parameters"]) == (conv4, conv5)
    assert model.head.in_features == features == BACKBONES[name].features
    owned = [id(p) for b in ("stem", "conv2", "conv3", "conv4", "conv5") for p in model.block_parameters(b)]
    assert len(owned) == len(set(owned)) == len(list(model.backbone.parameters()))
    model.freeze_all().unfreeze("conv5")
    assert model.trainable_parameter_count() == conv5 + features * 2 + 2


def test_a_backbone_name_and_image_size_are_checked() -> None:
    """An unknown backbone names the close one and every choice; a ViT refuses sizes that are not whole patches."""
    with pytest.raises(ValueError, match="convnext_tiny"):
        TrainConfig(backbone="convnext_tiney")
    with pytest.raises(ValueError, match="multiple of 16"):
        TrainConfig(backbone="vit_b16", image_size=40)


@pytest.mark.parametrize("name", TIMM)
def test_every_timm_backbone_trains_a_stage_changing_only_its_blocks(name: str, run_dir: Path) -> None:
    """emotion_conv5 on each backbone (random weights, 32 px): conv5 and the head change; every other weight and
    buffer stays the random initialisation; the row and the folder name the backbone."""
    config = TrainConfig(**{**TINY.__dict__, "backbone": name, "epochs": 1})
    row = train_one("emotion_conv5", run_dir, config, progress=False)
    assert (row["backbone"], row["backbone_weights"], row["trained_blocks"]) == (name, "random", "conv5")
    assert rundir.stage_run(run_dir, "emotion_conv5", 0, backbone=name).model.is_file()
    trained, _ = load_stage_model(run_dir, "emotion_conv5", 0, backbone=name)
    start = ArtNet.build(2, random_weights(get_backbone(name)), seed=0, image_size=32)
    before, after = start.state_dict(), trained.state_dict()
    conv5 = {k for k in after if any(k.startswith(f"backbone.{m}") for m in BACKBONES[name].modules_of("conv5"))}
    assert conv5 and all(torch.equal(before[k], after[k]) for k in after if k not in conv5 and not k.startswith("head."))
    assert any(not torch.equal(before[k], after[k]) for k in conv5 if after[k].is_floating_point())


def test_a_saved_state_dict_and_a_hugging_face_cache_give_the_backbone_its_weights(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch
                                                                                   ) -> None:
    """A .safetensors file and a Hugging Face cache folder load exactly the saved weights; a ViT's position
    embedding is resampled to the image size; another model's file is refused naming the file."""
    from safetensors.torch import save_file

    monkeypatch.setattr(backbone_weights, "_RESOLVED", {})
    torch.manual_seed(7)
    saved = {k: v.contiguous() for k, v in create_backbone(get_backbone("convnext_tiny"), None).state_dict().items()}
    path = tmp_path / "convnext.safetensors"
    save_file(saved, str(path))
    weights = resolve_weights(str(path), verbose=False, backbone="convnext_tiny")
    model = ArtNet.build(2, weights, image_size=32)
    assert weights.label == "file:convnext.safetensors"
    assert all(torch.equal(v, saved[k]) for k, v in model.backbone_state().items())

    snapshot = tmp_path / "hub" / "models--timm--convnext_tiny.in12k_ft_in1k" / "snapshots" / "0a1b2c"
    snapshot.mkdir(parents=True)
    save_file(saved, str(snapshot / "model.safetensors"))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0a1b2c")
    cached = resolve_weights(str(tmp_path / "hub"), verbose=False, backbone="convnext_tiny")
    assert cached.label == "timm:convnext_tiny.in12k_ft_in1k" and cached.digest == weights.digest

    vit = {k: v.contiguous() for k, v in create_backbone(get_backbone("vit_b16"), 224).state_dict().items()}
    save_file(vit, str(tmp_path / "vit.safetensors"))
    small = ArtNet.build(2, resolve_weights(str(tmp_path / "vit.safetensors"), False, "vit_b16"), image_size=32)
    assert small.backbone.pos_embed.shape == (1, 5, 768)  # 2 × 2 patches + the class token
    assert torch.equal(small.backbone.blocks[11].mlp.fc1.weight, vit["blocks.11.mlp.fc1.weight"])

    wrong = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in create_backbone(get_backbone("resnet34"), None).state_dict().items()},
              str(wrong))
    with pytest.raises(CheckpointError, match="resnet.safetensors"):
        resolve_weights(str(wrong), verbose=False, backbone="convnext_tiny")


def test_offline_auto_falls_back_to_random_and_pretrained_names_the_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without network or cache: 'auto' gives labelled random weights; 'pretrained' an error naming what to fetch."""
    import huggingface_hub.constants

    monkeypatch.setattr(backbone_weights, "_RESOLVED", {})
    monkeypatch.setattr(backbone_weights, "_hub_reachable", lambda timeout=5.0: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    assert resolve_weights("auto", verbose=False, backbone="clip_vit_b16").label == "random"
    with pytest.raises(RuntimeError) as info:
        resolve_weights("pretrained", verbose=False, backbone="clip_vit_b16")
    assert "huggingface.co/timm/vit_base_patch16_clip_224.openai/resolve/main/model.safetensors" in str(info.value)


def test_the_probe_head_is_scikit_learns_regression_with_standardisation_folded_in() -> None:
    """Hard labels: the head's probabilities equal LogisticRegression's at the chosen C; soft targets: the fitted head
    is a stationary point of the soft-target cross-entropy plus the L2 penalty (the weighted expansion is exact)."""
    from sklearn.linear_model import LogisticRegression

    from artlib.train.inputs import FeatureSource
    from artlib.train.probe import C_GRID, fit_probe
    from artlib.train.losses import SoftTargetKL

    rng = np.random.default_rng(0)
    n, d = 240, 2048
    x = (rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(size=d)).astype(np.float32)
    positions = {"train": np.arange(0, 160), "val": np.arange(160, 200), "test": np.arange(200, n)}
    y = (x[:, :5].sum(axis=1) + rng.normal(size=n) > 0).astype(np.int64)
    model = ArtNet.build(2, seed=0).freeze_all()
    source = FeatureSource(x, HEAD)
    loop = fit_probe(model, source, y, positions, TINY, torch.device("cpu"), "fp32", torch.nn.CrossEntropyLoss(), None)
    c = C_GRID[loop.best_epoch - 1]
    mean, scale = x[positions["train"]].astype(np.float64).mean(0), x[positions["train"]].astype(np.float64).std(0)
    reference = LogisticRegression(C=c, max_iter=2000).fit((x[positions["train"]] - mean) / scale, y[positions["train"]])
    expected = reference.predict_proba((x[positions["test"]] - mean) / scale)
    with torch.no_grad():
        got = torch.softmax(model.forward_blocks(torch.from_numpy(x[positions["test"]]), HEAD, None), 1).numpy()
    assert len(loop.history) == len(C_GRID) and np.abs(got - expected).max() < 1e-4

    k = 9
    soft = rng.dirichlet(np.ones(k) * 0.5, size=n).astype(np.float32)
    soft[soft < 0.05] = 0
    soft /= soft.sum(axis=1, keepdims=True)
    model9 = ArtNet.build(k, seed=0).freeze_all()
    loop9 = fit_probe(model9, source, soft, positions, TINY, torch.device("cpu"), "fp32", SoftTargetKL(), None)
    c9 = C_GRID[loop9.best_epoch - 1]
    z = (x[positions["train"]].astype(np.float64) - mean) / scale
    w = model9.head.weight.detach().double().numpy() * scale  # back to standardised coordinates
    b = model9.head.bias.detach().double().numpy() + w @ (mean / scale)
    logits = z @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gradient = z.T @ (p - soft[positions["train"]]) + w.T / c9  # d/dW of Σ CE(t, softmax) + ||W||²/(2C)
    assert np.abs(gradient).max() < 1e-2 * max(1.0, np.abs(z.T @ soft[positions["train"]]).max())


def test_the_cli_trains_another_backbone_beside_resnet50_without_touching_it(run_dir: Path) -> None:
    """`train emotion_conv5 emotion_probe --backbone convnext_tiny` adds rows naming it; resnet50's row and model stay;
    `compare` judges each backbone in its own families (the probe's apart from the study's)."""
    train_one("emotion_conv5", run_dir, TrainConfig(**{**TINY.__dict__, "epochs": 1}), progress=False)
    model = rundir.stage_run(run_dir, "emotion_conv5", 0).model
    before = model.read_bytes()
    code = main(["train", "emotion_conv5", "emotion_probe", "--backbone", "convnext_tiny", "--weights", "none",
                 "--seeds", "0", "--epochs", "1", "--image-size", "32", "--batch-size", "16", "--workers", "1",
                 "--precision", "fp32", "--run-dir", str(run_dir), "--quiet"])
    assert code == 0 and model.read_bytes() == before
    table = read_results(run_dir)
    assert sorted(zip(table["stage"], table["backbone"])) == [
        ("emotion_conv5", "convnext_tiny"), ("emotion_conv5", "resnet50"), ("emotion_probe", "convnext_tiny")]
    assert table.set_index(["stage", "backbone"]).loc[("emotion_probe", "convnext_tiny"), "trained_blocks"] == "head"
    assert main(["compare", "--run-dir", str(run_dir)]) == 0
    verdicts = pd.read_csv(rundir.verdicts(run_dir))
    assert set(verdicts["family"]) == {"binary", "binary:convnext_tiny", "linear-probe:convnext_tiny"}
    probe = verdicts.loc[(verdicts["family"] == "linear-probe:convnext_tiny")
                         & (verdicts["comparison"] == "fine-tuned conv5 vs linear probe")]
    assert len(probe) == 1 and probe["n_seeds"].iloc[0] == 1
    assert not verdicts.duplicated(["family", "comparison"]).any()


def test_resnet50_gives_exactly_the_numbers_of_0_2(run_dir: Path) -> None:
    """The tiny data trained as 0.2 (856f8ed) trained it, on one thread: the same identity hashes (finished runs stay
    reusable), metrics and test probabilities, to the last digit stored (tests/golden_resnet50_02.json, made by 0.2)."""
    from artlib.train.driver import run_stages

    golden = json.loads((Path(__file__).parent / "golden_resnet50_02.json").read_text())
    names = ["emotion_conv4", "emotion_conv4_then_emotion_conv5", "genre_conv4", "genre_conv4_then_emotion_conv5"]
    rows = run_stages(names, run_dir, TINY, seeds=[0], progress=False, executor=Executor(cpus=1)).set_index("stage")
    for expected in golden:
        row = rows.loc[expected["stage"]]
        assert row["backbone"] == "resnet50"
        for column in ("config_hash", "accuracy", "f1", "balanced_accuracy", "n_test", "best_epoch"):
            assert row[column] == expected[column], (expected["stage"], column)
        predictions = pd.read_csv(rundir.stage_run(run_dir, expected["stage"], 0).predictions)
        assert predictions.filter(like="p_").round(5).to_numpy()[:5].tolist() == expected["probabilities"]


def test_a_probe_head_maps_two_present_classes_of_four_and_keeps_absent_ones_rare() -> None:
    """Only classes 1 and 3 in training (of 4): the head puts scikit-learn's logit on class 3 against class 1, and
    the absent classes get a finite, tiny probability (a validation vote for one keeps the loss finite)."""
    from sklearn.linear_model import LogisticRegression

    from artlib.train.inputs import FeatureSource
    from artlib.train.probe import C_GRID, fit_probe

    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 2048)).astype(np.float32)
    y = np.where(x[:, 0] > 0, 3, 1).astype(np.int64)
    positions = {"train": np.arange(80), "val": np.arange(80, 100), "test": np.arange(100, 120)}
    model = ArtNet.build(4, seed=0).freeze_all()
    loop = fit_probe(model, FeatureSource(x, HEAD), y, positions, TINY, torch.device("cpu"), "fp32",
                     torch.nn.CrossEntropyLoss(), None)
    train = x[positions["train"]].astype(np.float64)
    mean, scale = train.mean(0), train.std(0)
    reference = LogisticRegression(C=C_GRID[loop.best_epoch - 1], max_iter=2000).fit((train - mean) / scale,
                                                                                      y[positions["train"]])
    with torch.no_grad():
        probs = torch.softmax(model.forward_blocks(torch.from_numpy(x[positions["test"]]), HEAD, None), 1).numpy()
    expected = reference.predict_proba((x[positions["test"]] - mean) / scale)
    present = probs[:, [1, 3]] / probs[:, [1, 3]].sum(1, keepdims=True)
    assert np.abs(present - expected).max() < 1e-4
    assert (probs[:, [0, 2]] > 0).all() and (probs[:, [0, 2]] < 1e-5).all()


def test_a_probe_fits_cached_features_even_when_training_decodes_files(run_dir: Path) -> None:
    """images='files' (decode every batch) cannot feed a probe: it still builds the caches it needs and trains."""
    config = TrainConfig(**{**TINY.__dict__, "images": "files"})
    row = train_one("emotion_probe", run_dir, config, progress=False)
    assert row["trained_blocks"] == "head" and bool(row["feature_cache"]) and row["epochs_run"] == 7


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_feature_cache_holds_exactly_the_prefix_output_rounded_once(tmp_path: Path, precision: str) -> None:
    """The cache's float16 features are the prefix's output rounded to float16 once (as numpy's astype from float32
    rounds it), byte for byte, under fp32 and bf16 compute."""
    from artlib.models.backbone import autocast
    from artlib.train.features import build_feature_cache

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 32, 32, 3), dtype=np.uint8)
    rows = np.arange(3, 40)
    model = ArtNet.build(2, seed=0).freeze_all().unfreeze("conv5").eval()
    cache = build_feature_cache(model, images, rows, "test", tmp_path, torch.device("cpu"), precision,
                                batch_size=64, progress=False)  # one batch, as the reference below
    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        f = model.forward_blocks(torch.from_numpy(images[rows]), None, "conv5")
    expected = f.float().permute(0, 2, 3, 1).numpy().astype(np.float16)
    assert np.asarray(cache.array).tobytes() == expected.tobytes()
