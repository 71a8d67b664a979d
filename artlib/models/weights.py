"""Where a backbone's pretrained weights come from, exactly as a user with (or without) internet gets them.

``weights`` options, for every backbone:

- ``auto``: the backbone's pretrained weights (its own cache, else a download), else — loudly — a fallback:
  for resnet50 the self-supervised offline ResNet50, for the others random initialisation;
- ``imagenet`` / ``pretrained``: the backbone's pretrained weights, or an error naming the file to fetch and
  where to put it (for timm backbones these are timm's default weights of the architecture: ImageNet for the
  ResNets, ConvNeXt and ViT; OpenAI's for CLIP);
- ``self-supervised``: resnet50 only, the imgsim ResNet50 (self-supervised on ImageNet images);
- ``none``: random initialisation;
- a path: a state dict file (.pth/.pt/.bin/.safetensors), or for a timm backbone a folder — a Hugging Face cache
  (``$HF_HOME/hub``, holding ``models--timm--…``) or a folder holding the model's ``model.safetensors``.

resnet50 keeps torchvision's ImageNet path of 0.1/0.2 (its results are unchanged); every other backbone comes from
timm, the one source of its architecture, weights, normalisation and input size (``pretrained_cfg``). Files are
read with ``weights_only=True`` or safetensors, never unpickled freely.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from artlib import atomic
from artlib.errors import CheckpointError, DataError
from artlib.models.checkpoints import all_records_stored, verify_zip
from artlib.models.networks import create_backbone, resnet50_shapes
from artlib.models.registry import DEFAULT_BACKBONE, BackboneSpec, get_backbone

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"  # torchvision IMAGENET1K_V2
IMAGENET_FILE = "resnet50-11ad3fa6.pth"
WEIGHT_CHOICES = ("auto", "imagenet", "pretrained", "self-supervised", "none")
HF_FILES = ("model.safetensors", "pytorch_model.bin")
"""The files a timm model's Hugging Face repository holds its weights in, in timm's order of preference."""
_KEY_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "resnet.", "pre.", "net.")


@dataclass(frozen=True)
class Weights:
    """Resolved backbone weights: a recorded label, where they came from, the normalisation they expect."""

    label: str  # recorded as results.csv 'backbone_weights'
    source: str  # file path, URL or 'random'
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    digest: str = "random"  # content hash, part of every cache key
    backbone: str = DEFAULT_BACKBONE

    def load_state_dict(self) -> OrderedDict[str, torch.Tensor] | None:
        """The weights file's state dict (resnet50: fc removed, prefixes stripped), or None for random init.

        The first time in a process, the file's tensors are mapped from the page cache rather than read into fresh
        memory (0.04 s less for ResNet50 on the README's machine): the caller copies them into its network, and the
        mapping goes with the returned dict. From the second time, they are read once and kept in memory while the
        file is unchanged (size, modification and change times, inode; the digest checked at resolution): a grid
        builds the same backbone dozens of times.
        """
        if self.source in ("random", "memory"):
            return None
        stat = os.stat(self.source)
        key = (self.source, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, self.digest, self.backbone)
        if key not in _BUILT_FROM:
            _BUILT_FROM.add(key)
            return _read(self.source, self.backbone, mapped=True)
        return _loaded(*key)


_BUILT_FROM: set[tuple] = set()  # the weights files (in a given state) this process has built a network from


@functools.lru_cache(maxsize=2)
def _loaded(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int, digest: str,
            backbone: str) -> OrderedDict[str, torch.Tensor]:
    """The state dict of a weights file, read and remembered per file state and digest; callers copy the tensors."""
    return _read(path, backbone)


def _read(path: str, backbone: str, mapped: bool = False) -> OrderedDict[str, torch.Tensor]:
    """The state dict of a weights file for this backbone (``mapped``: see :func:`read_state_file`)."""
    if backbone == DEFAULT_BACKBONE:
        return load_backbone_file(path, mapped)
    return read_state_file(path, mapped)


def _file_digest(path: str | os.PathLike[str]) -> str:
    """A short content hash of a weights file (cache keys change when the file does).

    Hashing takes 0.1 s per 100 MB, in every process that trains: the digest is remembered in the user's cache
    folder per file state (path, size, modification and change times in ns, inode, device), as git remembers file
    hashes; a file changed in any of these is hashed again, and one changed in the last 2 s is not remembered (a
    second change within the file system's time resolution could keep its times).
    """
    path = Path(path).resolve()
    stat = path.stat()
    state = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}|{stat.st_dev}"
    if state in _DIGESTS:
        return _DIGESTS[state]
    known = _known_digests()
    if state not in known:
        h = hashlib.blake2b(digest_size=8)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        known = {k: v for k, v in known.items() if not k.startswith(f"{path}|")}  # this file's older states
        known[state] = h.hexdigest()
        if time.time() - max(stat.st_mtime, stat.st_ctime) > 2.0:
            _remember(known)
    _DIGESTS[state] = known[state]
    return known[state]


_DIGESTS: dict[str, str] = {}  # this process's digests per file state (also when the cache folder is read-only)


def digest_memo_path() -> Path:
    """Where weights files' digests are remembered: $ARTLIB_CACHE_DIR, else $XDG_CACHE_HOME/artlib (default
    ~/.cache/artlib)."""
    folder = os.environ.get("ARTLIB_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "artlib"
    return Path(folder) / "weights-digests.json"


def _known_digests() -> dict[str, str]:
    """The remembered digests (empty when the file is absent or unreadable, or there is no home folder)."""
    try:
        known = json.loads(digest_memo_path().read_text())
    except (OSError, ValueError, RuntimeError):
        return {}
    return {k: v for k, v in known.items() if isinstance(v, str)} if isinstance(known, dict) else {}


def _remember(known: dict[str, str]) -> None:
    """Write the digests of files that still exist (best effort: without a writable cache folder, hash next time)."""
    try:
        atomic.write_json(digest_memo_path(), {k: v for k, v in known.items() if os.path.exists(k.rsplit("|", 5)[0])})
    except (OSError, DataError, RuntimeError) as exc:
        log.debug("could not remember weights digests: %s", exc)


# ---- torchvision's ResNet50 (the study's) -------------------------------------------------
def imagenet_cache_path() -> Path:
    """Where torchvision keeps (and artlib looks for) the ImageNet ResNet50 weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def self_supervised_path() -> Path | None:
    """The offline ResNet50 of the ``imgsim`` package (self-supervised on ImageNet images), if installed."""
    spec = importlib.util.find_spec("imgsim")  # located, never imported: importing needs OpenCV
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model.pth"
    return path if path.is_file() else None


def _download_imagenet(timeout: float = 20.0) -> Path:
    """Download torchvision's IMAGENET1K_V2 file into the hub cache (short network timeout)."""
    target = imagenet_cache_path()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.load_state_dict_from_url(IMAGENET_URL, progress=False, check_hash=True, weights_only=True,
                                           file_name=IMAGENET_FILE)
    finally:
        socket.setdefaulttimeout(old)
    return target


def offline_instructions() -> str:
    """How to provide the ImageNet ResNet50 weights without network."""
    return (f"On a machine with internet, download {IMAGENET_URL} and copy it to {imagenet_cache_path()} "
            f"(torchvision's cache, $TORCH_HOME), or pass weights='<path to the .pth file>'. "
            f"weights='auto' falls back to the self-supervised offline weights (pip install --no-deps imgsim==0.1.2).")


_RESOLVED: dict[tuple[str, str], Weights] = {}


def resolve_weights(spec: str = "auto", verbose: bool = True, backbone: str = DEFAULT_BACKBONE) -> Weights:
    """Like :func:`_resolve`, remembered per process (per backbone and option) so a notebook asks the network once;
    resolved again when the weights file changed since (its digest, remembered per file state, differs)."""
    key = (backbone, str(spec))
    if key not in _RESOLVED or not _unchanged(_RESOLVED[key]):
        _RESOLVED[key] = _resolve(str(spec), verbose, get_backbone(backbone))
    elif verbose:
        _announce(_RESOLVED[key], True)
    return _RESOLVED[key]


def _unchanged(weights: Weights) -> bool:
    """False when the weights' file is gone or is now another file than the one resolved (random weights, a folder:
    True)."""
    if weights.source in ("random", "memory") or os.path.isdir(weights.source):
        return True
    return os.path.isfile(weights.source) and _file_digest(weights.source) == weights.digest


def _resolve(spec: str, verbose: bool, backbone: BackboneSpec) -> Weights:
    """Turn a ``weights`` option into concrete weights for the backbone, announcing loudly which ones are used."""
    if spec == "none":
        return _announce(random_weights(backbone), verbose, "using RANDOM initialisation (weights='none')")
    if spec == "self-supervised" and backbone.name != DEFAULT_BACKBONE:
        raise ValueError(f"weights='self-supervised' exists for resnet50 only (the imgsim ResNet50); for "
                         f"{backbone.name} use 'auto', 'pretrained', 'none' or a path.")
    if spec not in WEIGHT_CHOICES:
        return _announce(_from_path(Path(spec).expanduser(), spec, backbone), verbose)
    if backbone.name == DEFAULT_BACKBONE:
        return _resolve_resnet50(spec, verbose)
    return _resolve_timm(spec, verbose, backbone)


def _from_path(path: Path, spec: str, backbone: BackboneSpec) -> Weights:
    """Weights from a file (any backbone) or a folder (a timm backbone's Hugging Face cache or model folder)."""
    if path.is_dir() and backbone.name != DEFAULT_BACKBONE:
        found = hf_cached_file(backbone, path)
        if found is None:
            raise FileNotFoundError(f"weights={spec!r}: no weights for {backbone.name} in this folder. "
                                    + timm_instructions(backbone))
        in_cache = any(part.startswith("models--") for part in found.relative_to(path).parts)
        return timm_file_weights(backbone, found, f"timm:{backbone.timm_name}" if in_cache else f"folder:{path.name}")
    if not path.is_file():
        raise FileNotFoundError(f"weights={spec!r}: no such file. Use one of {WEIGHT_CHOICES} or a path to a "
                                f".pth/.pt/.bin/.safetensors state dict"
                                + ("." if backbone.name == DEFAULT_BACKBONE else " or a Hugging Face cache folder."))
    if backbone.name == DEFAULT_BACKBONE:
        load_backbone_file(path, mapped=True)  # validate now, not in the middle of training (the dict is let go)
        return Weights(label=f"file:{path.name}", source=str(path), digest=_file_digest(path))
    return timm_file_weights(backbone, path, f"file:{path.name}")


def _resolve_resnet50(spec: str, verbose: bool) -> Weights:
    """resnet50's weights: torchvision's ImageNet file, imgsim's self-supervised one, or (``auto``) the first found."""
    note = ""
    if spec in ("imagenet", "pretrained", "auto"):
        path = imagenet_cache_path()
        error = None
        if not path.is_file():
            try:
                path = _download_imagenet()
            except Exception as exc:  # noqa: BLE001 (any network failure means: not available)
                error = exc
        if path.is_file():
            return _announce(Weights(label="imagenet:IMAGENET1K_V2", source=str(path), digest=_file_digest(path)), verbose)
        if spec != "auto":
            raise RuntimeError(f"ImageNet weights are not available ({type(error).__name__}: {error}). "
                               + offline_instructions())
        note = f"ImageNet weights unavailable ({type(error).__name__}); "
    path = self_supervised_path()
    if path is not None:
        weights = Weights(label="self-supervised:imgsim-0.1.2", source=str(path), digest=_file_digest(path))
        return _announce(weights, verbose, note + "using the SELF-SUPERVISED imgsim ResNet50 (not ImageNet-supervised)")
    if spec == "self-supervised":
        raise RuntimeError("self-supervised weights need the imgsim package: pip install --no-deps imgsim==0.1.2")
    return _announce(random_weights(get_backbone(DEFAULT_BACKBONE)), verbose,
                     note + "imgsim not installed; using RANDOM initialisation")


# ---- timm backbones -----------------------------------------------------------------------
def timm_config(backbone: BackboneSpec) -> dict:
    """timm's pretrained_cfg of the backbone's default weights (mean, std, input size, Hugging Face repository)."""
    import timm

    return dict(timm.models.get_pretrained_cfg(backbone.timm_name).to_dict())


def random_weights(backbone: BackboneSpec) -> Weights:
    """Random initialisation (seeded per stage-run), with the normalisation of the backbone's pretrained weights."""
    if backbone.name == DEFAULT_BACKBONE:
        return Weights(label="random", source="random")
    cfg = timm_config(backbone)
    return Weights(label="random", source="random", mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                   backbone=backbone.name)


def hf_cached_file(backbone: BackboneSpec, folder: Path | None = None) -> Path | None:
    """The backbone's weights file in a Hugging Face cache (``folder``, else the default one), or a model folder."""
    from huggingface_hub import try_to_load_from_cache

    repo = timm_config(backbone)["hf_hub_id"]
    for name in HF_FILES:
        if folder is not None and (folder / name).is_file():
            return folder / name
        found = try_to_load_from_cache(repo, name, cache_dir=None if folder is None else str(folder))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def timm_instructions(backbone: BackboneSpec) -> str:
    """Which file to fetch for a timm backbone, from where, and where to put it, for a machine without internet."""
    repo = timm_config(backbone)["hf_hub_id"]
    return (f"On a machine with internet, download https://huggingface.co/{repo}/resolve/main/{HF_FILES[0]} and "
            f"pass weights='<path to it>', or copy that machine's Hugging Face cache folder "
            f"(~/.cache/huggingface/hub, holding models--{repo.replace('/', '--')}) here and pass it as weights "
            f"(or set HF_HOME). weights='auto' falls back to random initialisation.")


def _hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hugging Face endpoint ($HF_ENDPOINT) answers at all, checked first because the hub client retries
    for about a minute offline; behind an HTTPS proxy the client is left to find out itself."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _download_timm(backbone: BackboneSpec) -> Path:
    """Download the backbone's weights into the Hugging Face cache, as timm does, and return the file."""
    from huggingface_hub import hf_hub_download

    if not _hub_reachable():
        raise OSError("huggingface.co is not reachable")
    return Path(hf_hub_download(timm_config(backbone)["hf_hub_id"], HF_FILES[0]))


def _resolve_timm(spec: str, verbose: bool, backbone: BackboneSpec) -> Weights:
    """A timm backbone's pretrained weights: the Hugging Face cache, else a download, else (``auto``) random."""
    path = hf_cached_file(backbone)
    error: Exception | None = None
    if path is None:
        try:
            path = _download_timm(backbone)
        except Exception as exc:  # noqa: BLE001 (any network failure means: not available)
            error = exc
    if path is not None:
        return _announce(timm_file_weights(backbone, path, f"timm:{backbone.timm_name}"), verbose)
    if spec != "auto":
        raise RuntimeError(f"{backbone.name}: pretrained weights are not available ({type(error).__name__}: {error}). "
                           + timm_instructions(backbone))
    return _announce(random_weights(backbone), verbose,
                     f"{backbone.name} pretrained weights unavailable ({type(error).__name__}); using RANDOM "
                     f"initialisation")


def timm_file_weights(backbone: BackboneSpec, path: Path, label: str) -> Weights:
    """Weights for a timm backbone from a state-dict file, validated by loading them into the architecture now."""
    create_backbone(backbone, None, read_state_file(path, mapped=True), source=str(path))  # refuses another model's
    cfg = timm_config(backbone)
    return Weights(label=label, source=str(path), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                   digest=_file_digest(path), backbone=backbone.name)


def _announce(weights: Weights, verbose: bool, note: str = "") -> Weights:
    """Print which backbone weights are in use (results record the same label)."""
    if verbose:
        banner = "!" * 8 if weights.label.startswith(("self-supervised", "random")) else "*" * 3
        log.warning("%s %s weights: %s%s %s", banner, weights.backbone, weights.label, f" — {note}" if note else "",
                    banner)
    return weights


# ---- reading files safely -----------------------------------------------------------------
def read_state_file(path: str | os.PathLike[str], mapped: bool = False) -> OrderedDict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch zip file (``weights_only``), unwrapped from common wrappers.

    ``mapped``: the file is mapped into memory, not read, where that is possible (a .safetensors file; a torch zip
    file whose records are all stored as they are, as torch writes them), for a caller that copies the tensors at
    once and lets the dict go (a process's first build of a network from the file, and the check of weights given as
    a path). Its pages are read from the file as they are used, so the file must not change meanwhile: one truncated
    in place then ends the process with SIGBUS instead of an error. Unmapped, every tensor is in memory of its own
    once this returns.
    """
    path = Path(path)
    try:
        state = _file_contents(path, mapped)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot load as a state dict ({type(exc).__name__}: {exc}). "
                              f"Provide a .pth/.pt/.bin (torch.save of a state_dict) or .safetensors file.") from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict.")
    return OrderedDict((k, v) for k, v in state.items() if isinstance(v, torch.Tensor))


def _file_contents(path: Path, mapped: bool) -> Any:
    """What a weights file holds, mapped into memory or read (see :func:`read_state_file`); where the file system
    cannot map a file, read."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))  # (mapped: safetensors maps the file)
        return state if mapped else {key: value.clone() for key, value in state.items()}  # one copy, mapping let go
    verify_zip(path)
    if mapped and all_records_stored(path):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (OSError, RuntimeError) as exc:  # e.g. a network or FUSE file system that cannot map: read it
            log.debug("%s: not mapped (%s); reading it", path, exc)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=False)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Remove wrapper prefixes ('module.', 'pre.', 'backbone.', …) until keys look like torchvision's."""
    out = OrderedDict(state)
    for _ in range(4):
        if any(k.startswith("conv1.") or k.startswith("layer1.") for k in out):
            break
        for prefix in _KEY_PREFIXES:
            if any(k.startswith(prefix) for k in out):
                out = OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in out.items())
    return out


def load_backbone_file(path: str | os.PathLike[str], mapped: bool = False) -> OrderedDict[str, torch.Tensor]:
    """Load a ResNet50 backbone state dict safely (weights_only / safetensors), validated against the architecture
    (``mapped``: see :func:`read_state_file`)."""
    state = _strip_prefixes(read_state_file(path, mapped))
    state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("fc."))
    reference = {k: shape for k, shape in resnet50_shapes().items() if not k.startswith("fc.")}
    for key in [k for k in reference if k.endswith("num_batches_tracked") and k not in state]:
        state[key] = torch.zeros((), dtype=torch.long)  # older checkpoints (e.g. torchvision's) may lack these
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    wrong = [k for k in reference if k in state and tuple(state[k].shape) != reference[k]]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: not a torchvision ResNet50 backbone: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong)} with wrong shapes (e.g. {wrong[:3]}).")
    return state
