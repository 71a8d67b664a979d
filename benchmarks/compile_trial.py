"""Past eager: torch.compile (and other graph paths) of the trainable blocks and of the frozen prefix, on CPU.

    python benchmarks/compile_trial.py [--shares-from runs/bench/bench.json] [--stages emotion_conv5 emotion_conv45]
        [--image-size 112] [--epochs 10] [--n-train 438] [--n-val 94] [--n-test 94] [--cache-images 626]
        [--train-modes eager compile] [--prefix-modes eager compile compile-freezing jit-freeze] [--warm]
        [--out runs/bench/compile_trial.json]

Sizes and the thread count not given come from ``--shares-from``'s artlib row (a train_throughput.py JSON of the
same machine), else the defaults shown.

For each stage it times, each attempt in a fresh ``spawn`` process with a fresh inductor cache (compile time
counted in the wall time, as a user's first run pays it):

* **training** — a whole ``--epochs`` run of artlib's feature-cache loop on random features of the real cached
  shape, dtype and layout: per epoch, ``--n-train`` images in a seeded order in batches of ``--batch-size``
  (the trailing batch as artlib's, a batch of one dropped), forward ``model.forward_blocks(x, start, None)`` in
  train mode under artlib's autocast, float loss, backward, Adam (artlib's ``make_adam``); then a no-grad
  validation pass over ``--n-val`` in eval mode. ``eager`` is artlib today; ``compile`` wraps that forward in
  ``torch.compile`` (``--backend``, default inductor, default mode), so backward comes from AOTAutograd and the
  eval-mode validation and the trailing batch recompile; ``compile-adam`` also compiles a foreach Adam's step.
* **prefix** — the frozen prefix over ``--cache-images`` random uint8 images (cache building's compute):
  ``eager``; ``compile``; ``compile-freezing`` (inductor with ``freezing=True``: weights as constants,
  conv+BN folded, oneDNN weight prepacking); ``jit-freeze`` (``torch.jit.trace`` + ``torch.jit.freeze`` +
  ``optimize_for_inference``).

Every attempt starts from the same weights and the same data; a compiled attempt's test probabilities (its own
forward, eval mode, ``--n-test`` random features) are compared with eager's (argmax agreement, largest probability
difference): random features give a numerical check, not an accuracy. An attempt that raises, dies or runs past
``--attempt-timeout`` is reported ``unsupported`` / ``failed`` / ``timeout`` and eager stays the answer.
``--warm`` repeats each compiled attempt with its cache left warm (later stage-runs of the same shapes).

Prints per stage the end-to-end ratio eager / attempt for the epochs and for the prefix, the combined one
(prefix + epochs), and the verdict of the issue's rule: adopt where >= 1.2x faster end to end with predictions
agreeing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any

import limits
import train_throughput as tt

from artlib.paths import display_path, resolve_path

TRAIN_MODES = ("eager", "compile", "compile-adam")
PREFIX_MODES = ("eager", "compile", "compile-freezing", "jit-freeze")
ADOPT_RATIO = 1.2


# ---- in the attempt's process ------------------------------------------------------------------
def _features(shape: tuple[int, ...], n: int, precision: str, seed: int) -> Any:
    """n random non-negative cached features (NHWC storage, the dtype FeatureSource hands over)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return torch.randn(n, *shape, generator=g).relu_().to(dtype)


def _as_input(block: Any) -> Any:
    """A batch of NHWC features as the NCHW view artlib's as_input gives."""
    return block.permute(0, 3, 1, 2) if block.dim() == 4 else block


def _forward(model: Any, job: dict[str, Any]) -> Any:
    """The trainable part's forward for this attempt's mode (eager, or compiled with the job's backend)."""
    import torch

    start = model.feature_start()

    def forward(x: torch.Tensor) -> torch.Tensor:
        """The trainable blocks and the head."""
        return model.forward_blocks(x, start, None)

    return forward if job["mode"] == "eager" else torch.compile(forward, backend=job["backend"])


def _adam_step(model: Any, job: dict[str, Any]) -> Any:
    """The optimizer's step: artlib's (fused where available), or a compiled foreach Adam for ``compile-adam``."""
    import torch

    from artlib.train.loop import make_adam

    params = [p for p in model.parameters() if p.requires_grad]
    if job["mode"] != "compile-adam":
        opt = make_adam(params, job["lr"], 0.0)
        return opt, opt.step
    opt = torch.optim.Adam(params, lr=torch.tensor(job["lr"]), foreach=True)  # a tensor lr: no recompile per value
    return opt, torch.compile(opt.step, backend=job["backend"])


def _epochs(model: Any, job: dict[str, Any], data: dict[str, Any]) -> list[float]:
    """Run the epochs (training pass, then validation) as artlib's loop does; seconds per epoch."""
    import numpy as np
    import torch
    from torch import nn

    from artlib.models.backbone import autocast
    from artlib.train.loop import batches, epoch_order

    cpu, forward = torch.device("cpu"), _forward(model, job)
    opt, step = _adam_step(model, job)
    criterion = nn.CrossEntropyLoss(weight=torch.ones(model.head.out_features))
    seconds = []
    for epoch in range(1, job["epochs"] + 1):
        t0 = time.perf_counter()
        model.train()
        for chunk in batches(epoch_order(np.arange(job["n_train"]), 0, epoch), job["batch_size"]):
            with autocast(cpu, job["precision"]):
                logits = forward(_as_input(data["train"][chunk]))
            loss = criterion(logits.float(), data["y_train"][chunk])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step()
            float(loss.detach())
        _predict(model, forward, data["val"], job)
        seconds.append(time.perf_counter() - t0)
    data["test_probs"] = _predict(model, forward, data["test"], job)
    return seconds


def _predict(model: Any, forward: Any, features: Any, job: dict[str, Any]) -> Any:
    """Class probabilities of these features in eval mode, no grad, batch by batch (artlib's evaluate)."""
    import numpy as np
    import torch

    from artlib.models.backbone import autocast
    from artlib.train.loop import batches

    model.eval()
    out = []
    with torch.no_grad():
        for chunk in batches(np.arange(len(features)), job["batch_size"], drop_single=False):
            with autocast(torch.device("cpu"), job["precision"]):
                logits = forward(_as_input(features[chunk]))
            out.append(torch.softmax(logits.float(), dim=1))
    model.train()
    return torch.cat(out)


def train_attempt(job: dict[str, Any]) -> dict[str, Any]:
    """One training attempt: the whole epochs run, timed per epoch, and its test probabilities."""
    import torch

    torch.set_num_threads(job["threads"])
    model = limits.stage_model(job["stage"], job["image_size"], job["weights"], job["seed"])
    shape = limits.feature_shape(model, job["image_size"])
    model.use_channels_last(limits.uses_channels_last(job["layout"], shape)).train()
    k = model.head.out_features
    g = torch.Generator().manual_seed(job["seed"] + 1)
    data = {"train": _features(shape, job["n_train"], job["precision"], 1),
            "val": _features(shape, job["n_val"], job["precision"], 2),
            "test": _features(shape, job["n_test"], job["precision"], 3),
            "y_train": torch.randint(0, k, (job["n_train"],), generator=g)}
    t0 = time.perf_counter()
    seconds = _epochs(model, job, data)
    total = time.perf_counter() - t0
    later = sorted(seconds[1:]) or seconds
    return {"feature_shape": list(shape), "epoch_seconds": seconds, "total_seconds": total,
            "steady_epoch_seconds": later[len(later) // 2], "first_epoch_seconds": seconds[0],
            "test_probs": data["test_probs"].tolist(), **_graphs()}


def _graphs() -> dict[str, Any]:
    """How many graphs dynamo compiled in this process (recompiles for eval mode and new batch sizes included)."""
    import torch._dynamo.utils as dynamo_utils

    counters = {k: dict(v) for k, v in dynamo_utils.counters.items()}
    return {"graphs": counters.get("stats", {}).get("unique_graphs"), "dynamo_counters": counters}


def _prefix_forward(model: Any, job: dict[str, Any], sample: Any) -> Any:
    """The prefix's forward for this attempt's mode (a callable on uint8 NHWC batches)."""
    import torch

    start = model.feature_start()

    def forward(x: torch.Tensor) -> torch.Tensor:
        """The frozen prefix."""
        return model.forward_blocks(x, None, start)

    if job["mode"] == "eager":
        return forward
    if job["mode"] == "jit-freeze":
        return _jit_frozen(model, start, job["precision"], sample)
    if job["mode"] == "compile-freezing":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    return torch.compile(forward, backend=job["backend"])


def _jit_frozen(model: Any, start: str, precision: str, sample: Any) -> Any:
    """The prefix traced (under autocast, the casts recorded in the graph), frozen and optimised for inference."""
    import torch

    from artlib.models.backbone import autocast

    class Prefix(torch.nn.Module):
        """The prefix as a module (torch.jit.freeze takes modules)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """The frozen prefix."""
            return self.model.forward_blocks(x, None, start)

    torch._C._jit_set_autocast_mode(False)  # trace the casts autocast makes; no second autocast pass when it runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated: that is part of the answer
        with torch.no_grad(), autocast(torch.device("cpu"), precision):
            traced = torch.jit.trace(Prefix().eval(), sample, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def prefix_attempt(job: dict[str, Any]) -> dict[str, Any]:
    """One prefix attempt: every cached image through the prefix in batches (cache building's compute), timed."""
    import torch

    torch.set_num_threads(job["threads"])
    model = limits.stage_model(job["stage"], job["image_size"], job["weights"], job["seed"]).eval()
    g = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (job["cache_images"], job["image_size"], job["image_size"], 3), generator=g,
                           dtype=torch.uint8)
    t0 = time.perf_counter()
    call = limits.prefix_forward(model, job["precision"], _prefix_forward(model, job, images[: job["batch_size"]]))
    first = None
    for lo in range(0, job["cache_images"], job["batch_size"]):
        f = call(images[lo: lo + job["batch_size"]])
        first = f if first is None else first
    total = time.perf_counter() - t0
    return {"total_seconds": total, "first_batch": first[:4].flatten()[:4096].tolist(), **_graphs()}


def _attempt(conn: Any, job: dict[str, Any]) -> None:
    """Process entry: run one attempt; send ('ok', result) or ('unsupported', the exception)."""
    try:
        result = (train_attempt if job["part"] == "train" else prefix_attempt)(job)
        conn.send(("ok", result))
    except Exception as exc:  # noqa: BLE001 (reported: the attempt is unsupported here)
        conn.send(("unsupported", f"{type(exc).__name__}: {str(exc)[:400]}\n{traceback.format_exc()[-1500:]}"))
    finally:
        conn.close()


# ---- the parent ----------------------------------------------------------------------------------
def spawn(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one attempt in a fresh 'spawn' process; its result with status ok / unsupported / failed / timeout."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    busy0, own0, t0 = tt._cpu_busy_seconds(), tt._children_cpu_seconds(), time.perf_counter()
    proc = ctx.Process(target=_attempt, args=(send, job), name=f"trial-{job['stage']}-{job['part']}-{job['mode']}")
    proc.start()
    send.close()
    if recv.poll(timeout):
        try:
            status, payload = recv.recv()
        except EOFError:
            proc.join()
            status, payload = "failed", f"the attempt's process died (exit code {proc.exitcode})"
    else:
        proc.kill()
        status, payload = "timeout", f"no result after {timeout:.0f} s"
    proc.join()
    elapsed, busy1 = time.perf_counter() - t0, tt._cpu_busy_seconds()
    result = payload if status == "ok" else {"error": payload}
    result.update(status=status, process_seconds=elapsed)
    if busy0 is not None and busy1 is not None:
        other = max(0.0, busy1 - busy0 - (tt._children_cpu_seconds() - own0))
        result["other_cpu_share"] = other / (elapsed * (os.cpu_count() or 1))
    return result


def _compare(part: str, eager: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """How close an attempt's outputs are to eager's: test argmax agreement and largest probability difference
    (training), largest feature difference relative to the largest feature (prefix)."""
    import numpy as np

    if part == "train":
        a, b = np.asarray(eager["test_probs"]), np.asarray(other["test_probs"])
        return {"agreement": float((a.argmax(1) == b.argmax(1)).mean()), "max_prob_diff": float(np.abs(a - b).max())}
    a, b = np.asarray(eager["first_batch"]), np.asarray(other["first_batch"])
    return {"max_rel_feature_diff": float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))}


def run_part(stage: str, part: str, modes: list[str], base: dict[str, Any], args: argparse.Namespace,
             cache_root: str) -> list[dict[str, Any]]:
    """Every mode of one part of one stage (eager first), each cold and, with --warm, again on its warm cache."""
    rows: list[dict[str, Any]] = []
    for mode in ["eager"] + [m for m in modes if m != "eager"]:
        cache = tempfile.mkdtemp(prefix=f"{stage}-{part}-{mode}-", dir=cache_root)
        for temperature in ("cold", "warm") if args.warm and mode != "eager" else ("cold",):
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # inherited by the spawned process
            print(f"  {stage:15s} {part:6s} {mode:17s} {temperature} …", end=" ", flush=True)
            r = spawn({**base, "stage": stage, "part": part, "mode": mode}, args.attempt_timeout)
            r.update(stage=stage, part=part, mode=mode, cache=temperature)
            if r["status"] == "ok" and rows and rows[0]["status"] == "ok":
                r.update(_compare(part, rows[0], r), ratio=rows[0]["total_seconds"] / r["total_seconds"])
            elif mode == "eager":
                r["ratio"] = 1.0
            print(f"{r['status']}" + (f", {r['total_seconds']:.1f} s, eager/this {r.get('ratio', float('nan')):.2f}"
                                      if r["status"] == "ok" else f": {r['error'].splitlines()[0][:160]}"), flush=True)
            rows.append(r)
            if r["status"] != "ok":
                break
    return rows


def verdicts(rows: list[dict[str, Any]], shares: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Per stage: the best cold attempt of each part, their combined ratio (prefix + epochs) and, with the benchmark's
    wall-time shares, the projected end-to-end ratio; adopt where >= 1.2x with predictions agreeing."""
    out = []
    for stage in sorted({r["stage"] for r in rows}):
        best: dict[str, dict[str, Any]] = {}
        for part in ("train", "prefix"):
            ok = [r for r in rows if r["stage"] == stage and r["part"] == part and r["status"] == "ok"
                  and r["cache"] == "cold" and (part == "prefix" or r["mode"] == "eager" or r["agreement"] >= 0.95)]
            if ok:
                best[part] = max(ok, key=lambda r: r["ratio"])
        eager = {p: next((r for r in rows if r["stage"] == stage and r["part"] == p and r["mode"] == "eager"
                          and r["status"] == "ok"), None) for p in ("train", "prefix")}
        if not best or None in eager.values() or len(best) < 2:
            continue
        combined = sum(e["total_seconds"] for e in eager.values()) / sum(b["total_seconds"] for b in best.values())
        v = {"stage": stage, "train_mode": best["train"]["mode"], "train_ratio": best["train"]["ratio"],
             "prefix_mode": best["prefix"]["mode"], "prefix_ratio": best["prefix"]["ratio"], "combined_ratio": combined}
        s = shares.get(stage)
        if s:  # the rest of artlib's wall time (image decoding, overheads) does not change
            v["projected_end_to_end_ratio"] = 1.0 / (1.0 - s["epochs"] - s["prefix"] + s["epochs"] / v["train_ratio"]
                                                     + s["prefix"] / v["prefix_ratio"])
        decisive = v.get("projected_end_to_end_ratio", combined)
        v["adopt"] = decisive >= ADOPT_RATIO and (v["train_mode"] != "eager" or v["prefix_mode"] != "eager")
        out.append(v)
    return out


def shares_from(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each stage's epochs and feature-cache shares of artlib's wall time, from a train_throughput.py report."""
    return {r["stage"]: {"epochs": r["share_training"] + r["share_validation"], "prefix": r["share_feature_cache"]}
            for r in report.get("rows", []) if r["pipeline"] == "artlib" and "share_training" in r}


DEFAULT_SIZES = {"n_train": 438, "n_val": 94, "n_test": 94, "cache_images": 626, "epochs": 10, "image_size": 112}


def sizes(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, int]:
    """The run's sizes: as given, else the benchmark report's artlib row (its settings and split), else the defaults."""
    row = next((r for r in report.get("rows", []) if r["pipeline"] == "artlib"), None)
    found = {} if row is None else {"n_train": row["n_train"], "n_val": row["n_val"], "n_test": row["n_test"],
                                    "cache_images": row.get("n_task"), "epochs": report["settings"]["epochs"],
                                    "image_size": report["settings"]["image_size"]}
    return {k: int(getattr(args, k) if getattr(args, k) is not None else found.get(k) or default)
            for k, default in DEFAULT_SIZES.items()}


COLUMNS = [("stage", "stage", ""), ("part", "part", ""), ("mode", "mode", ""), ("cache", "cache", ""),
           ("status", "status", ""), ("total s", "total_seconds", ".1f"), ("1st epoch s", "first_epoch_seconds", ".1f"),
           ("steady epoch s", "steady_epoch_seconds", ".2f"), ("graphs", "graphs", "d"), ("eager/this", "ratio", ".2f"),
           ("test argmax agree", "agreement", ".0%"), ("max prob diff", "max_prob_diff", ".4f"),
           ("max rel feat diff", "max_rel_feature_diff", ".4f"), ("other CPU", "other_cpu_share", ".0%")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", nargs="+", default=list(tt.STAGES), choices=tt.STAGES)
    # sizes: as given, else those of --shares-from's artlib row, else 112 px, 10 epochs, 438 / 94 / 94, 626 images
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-val", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--cache-images", type=int, default=None, help="images through the prefix (the task's rows)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="none", help="backbone weights (speed does not depend on them)")
    p.add_argument("--precision", default="auto", help="auto (artlib's pick), fp32 or bf16")
    p.add_argument("--layout", default="auto", help="auto (artlib's pick by input size), channels_last or contiguous")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: --shares-from's artlib row's, else every CPU this process may use)")
    p.add_argument("--train-modes", nargs="+", default=["eager", "compile"], choices=TRAIN_MODES)
    p.add_argument("--prefix-modes", nargs="+", default=list(PREFIX_MODES), choices=PREFIX_MODES)
    p.add_argument("--backend", default="inductor", help="torch.compile backend")
    p.add_argument("--warm", action="store_true", help="also time each compiled attempt on its warm cache")
    p.add_argument("--attempt-timeout", type=float, default=900, help="seconds before an attempt counts as timeout")
    p.add_argument("--shares-from", default=None,
                   help="a train_throughput.py JSON: project the end-to-end ratio with its artlib rows' wall shares")
    p.add_argument("--bench-dir", default="runs/bench")
    p.add_argument("--out", default="runs/bench/compile_trial.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the attempts, print the table and the verdicts, write the JSON."""
    import shutil

    import torch

    from artlib.models.backbone import cpu_has_native_bf16, pick_precision
    from artlib.train.threads import available_cpus

    args = parse_args(argv)
    report = json.loads(resolve_path(args.shares_from).read_text()) if args.shares_from else {}
    precision = pick_precision(args.precision, torch.device("cpu"))
    base: dict[str, Any] = {k: getattr(args, k) for k in ("batch_size", "lr", "seed", "weights", "layout", "backend")}
    reference = next((r for r in report.get("rows", []) if r["pipeline"] == "artlib"), {})
    base.update(sizes(args, report), precision=precision,
                threads=args.threads or reference.get("threads") or available_cpus())
    env = {"cpu_model": tt._cpu_model(), "cpus": os.cpu_count(), "cpu_native_bf16": cpu_has_native_bf16(),
           "torch": torch.__version__, "loadavg_at_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d")}
    print(f"{env['cpu_model']}, {base['threads']} threads, {precision}, torch {torch.__version__}; {base['epochs']} "
          f"epochs of {base['n_train']} training images (+{base['n_val']} validation), prefix over "
          f"{base['cache_images']} images, {base['image_size']} px; each attempt in a fresh process with a fresh "
          f"inductor cache:", flush=True)
    cache_root = resolve_path(args.bench_dir) / "inductor-caches"
    cache_root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    try:
        for stage in args.stages:
            rows += run_part(stage, "train", args.train_modes, base, args, str(cache_root))
            rows += run_part(stage, "prefix", args.prefix_modes, base, args, str(cache_root))
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    found = verdicts(rows, shares_from(report))
    print()
    print(tt.table(rows, COLUMNS))
    print()
    for v in found:
        projected = v.get("projected_end_to_end_ratio")
        print(f"{v['stage']}: best train {v['train_mode']} ({v['train_ratio']:.2f}x), best prefix {v['prefix_mode']} "
              f"({v['prefix_ratio']:.2f}x); prefix + epochs {v['combined_ratio']:.2f}x"
              + (f", projected end to end {projected:.2f}x" if projected else " (no --shares-from: not end to end)")
              + f" -> {'ADOPT' if v['adopt'] else 'keep eager'} (rule: >= {ADOPT_RATIO}x, predictions agreeing)")
    for r in rows:
        r.pop("test_probs", None), r.pop("first_batch", None)
    out = resolve_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": {**vars(args), **base}, "environment": env, "precision": precision,
                               "attempts": rows, "verdicts": found}, indent=1, default=str))
    print(f"wrote {display_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
