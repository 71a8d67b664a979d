#!/usr/bin/env python3
"""Measure how imagehash.phash (64-bit, hash_size=8) Hamming distances behave on
artwork images, to choose a near-duplicate threshold.

Usage
-----
    python measure_phash.py IMAGE_DIR [IMAGE_DIR ...] [--versions DIR ...]
                            [--pairs 3.2e9] [--max-d 20]

* Each IMAGE_DIR holds *distinct* artworks, one file per artwork.  The set is
  named after the folder.  For every image the script hashes the original and
  a list of benign edits (re-encode, resize, crop, rotate, colour tweaks,
  combinations) and records the Hamming distance to the original's hash.  All
  pairs of distinct images give the "distinct" distribution (within each set
  and over the union of the sets).
* Each --versions DIR holds several *different copies / photographs of one
  composition* (e.g. workshop copies of a painting).  Their pairwise distances
  are reported separately; they are not used as "distinct" pairs.

Output is Markdown on stdout.  Nothing is random; the run is deterministic for
given library versions.

Hashes are the same 64-bit values that `str(imagehash.phash(img))` writes as a
16-character hex string (the format of the Kaggle WikiArt classes.csv 'phash'
column); distances are popcount(a XOR b).
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
from collections import OrderedDict, defaultdict
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

import imagehash

IMAGE_EXT = ('.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.bmp', '.gif')
NBITS = 64

# --------------------------------------------------------------------------
# hashing helpers
# --------------------------------------------------------------------------

def phash64(img: Image.Image) -> int:
    """imagehash.phash with defaults (hash_size=8) as an int (same bits as hex)."""
    return int(str(imagehash.phash(img)), 16)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count('1')


def popcount64(x: np.ndarray) -> np.ndarray:
    """Vectorised popcount of uint64 array."""
    x = x.astype(np.uint64)
    c = np.zeros(x.shape, dtype=np.int64)
    for shift in range(0, 64, 8):
        c += _POP8[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)]
    return c


_POP8 = np.array([bin(i).count('1') for i in range(256)], dtype=np.int64)

# --------------------------------------------------------------------------
# transforms: each returns a list of (variant_name, image) so that one-sided
# edits can contribute several samples per painting
# --------------------------------------------------------------------------

def _jpeg(img, q):
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=q)
    buf.seek(0)
    return Image.open(buf).convert('RGB')


def _webp(img, q):
    buf = io.BytesIO()
    img.save(buf, format='WEBP', quality=q)
    buf.seek(0)
    return Image.open(buf).convert('RGB')


def _scale(img, f, resample=Image.LANCZOS):
    w, h = img.size
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), resample)


def _max_side(img, n):
    w, h = img.size
    f = n / max(w, h)
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)


def _crop_sym(img, p):
    w, h = img.size
    dx, dy = round(w * p / 100), round(h * p / 100)
    return img.crop((dx, dy, w - dx, h - dy))


def _crop_side(img, p, side):
    w, h = img.size
    dx, dy = round(w * p / 100), round(h * p / 100)
    box = {'left': (dx, 0, w, h), 'right': (0, 0, w - dx, h),
           'top': (0, dy, w, h), 'bottom': (0, 0, w, h - dy)}[side]
    return img.crop(box)


def _pad(img, p, colour=(255, 255, 255)):
    w, h = img.size
    dx, dy = round(w * p / 100), round(h * p / 100)
    return ImageOps.expand(img, border=(dx, dy, dx, dy), fill=colour)


def _rot_crop(img, deg):
    """Rotate and crop to the largest axis-aligned rectangle with no fill."""
    w, h = img.size
    r = img.rotate(deg, resample=Image.BICUBIC, expand=True)
    a = math.radians(abs(deg))
    # largest rotated rectangle (w_r, h_r) inside the rotated w x h image
    sin_a, cos_a = math.sin(a), math.cos(a)
    long_side, short_side = (w, h) if w >= h else (h, w)
    if short_side <= 2.0 * sin_a * cos_a * long_side or abs(sin_a - cos_a) < 1e-10:
        x = 0.5 * short_side
        wr, hr = (x / sin_a, x / cos_a) if w >= h else (x / cos_a, x / sin_a)
    else:
        cos_2a = cos_a * cos_a - sin_a * sin_a
        wr, hr = (w * cos_a - h * sin_a) / cos_2a, (h * cos_a - w * sin_a) / cos_2a
    W, H = r.size
    left, top = (W - wr) / 2, (H - hr) / 2
    return r.crop((math.ceil(left), math.ceil(top), math.floor(left + wr), math.floor(top + hr)))


def _rot_white(img, deg):
    """Rotate with canvas expansion, white fill (like a skewed scan)."""
    return img.rotate(deg, resample=Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))


SIDES = ('left', 'right', 'top', 'bottom')

# (name, group, description, function(img) -> list[(variant, img)])
TRANSFORMS = [
    ('jpeg_q95', 're-encode', 'JPEG quality 95', lambda im: [('', _jpeg(im, 95))]),
    ('jpeg_q75', 're-encode', 'JPEG quality 75', lambda im: [('', _jpeg(im, 75))]),
    ('jpeg_q50', 're-encode', 'JPEG quality 50', lambda im: [('', _jpeg(im, 50))]),
    ('webp_q80', 're-encode', 'WebP quality 80', lambda im: [('', _webp(im, 80))]),
    ('resize_50', 'resize', 'downscale to 50% (Lanczos)', lambda im: [('', _scale(im, .5))]),
    ('resize_25', 'resize', 'downscale to 25% (Lanczos)', lambda im: [('', _scale(im, .25))]),
    ('resize_50_up', 'resize', '50% then back to original size (bicubic)',
     lambda im: [('', _scale(im, .5).resize(im.size, Image.BICUBIC))]),
    ('resize_25_up', 'resize', '25% then back to original size (bicubic)',
     lambda im: [('', _scale(im, .25).resize(im.size, Image.BICUBIC))]),
    ('maxside_1024', 'resize', 'scale so the longer side is 1024 px (up or down)',
     lambda im: [('', _max_side(im, 1024))]),
    ('maxside_512', 'resize', 'scale so the longer side is 512 px (up or down)',
     lambda im: [('', _max_side(im, 512))]),
    ('maxside_256', 'resize', 'scale so the longer side is 256 px',
     lambda im: [('', _max_side(im, 256))]),
    ('crop_sym_1', 'crop', 'remove 1% of width/height from every side',
     lambda im: [('', _crop_sym(im, 1))]),
    ('crop_sym_2', 'crop', 'remove 2% from every side', lambda im: [('', _crop_sym(im, 2))]),
    ('crop_sym_3', 'crop', 'remove 3% from every side', lambda im: [('', _crop_sym(im, 3))]),
    ('crop_sym_5', 'crop', 'remove 5% from every side', lambda im: [('', _crop_sym(im, 5))]),
    ('crop_one_1', 'crop', 'remove 1% from ONE side (4 samples: l/r/t/b)',
     lambda im: [(s, _crop_side(im, 1, s)) for s in SIDES]),
    ('crop_one_2', 'crop', 'remove 2% from one side (4 samples)',
     lambda im: [(s, _crop_side(im, 2, s)) for s in SIDES]),
    ('crop_one_3', 'crop', 'remove 3% from one side (4 samples)',
     lambda im: [(s, _crop_side(im, 3, s)) for s in SIDES]),
    ('crop_one_5', 'crop', 'remove 5% from one side (4 samples)',
     lambda im: [(s, _crop_side(im, 5, s)) for s in SIDES]),
    ('pad_white_2', 'border', 'add a white border of 2% on every side',
     lambda im: [('', _pad(im, 2))]),
    ('pad_white_5', 'border', 'add a white border of 5% on every side',
     lambda im: [('', _pad(im, 5))]),
    ('rot_1', 'rotate', 'rotate +-1 deg, crop to inner rectangle (2 samples)',
     lambda im: [(f'{d:+d}', _rot_crop(im, d)) for d in (1, -1)]),
    ('rot_2', 'rotate', 'rotate +-2 deg, crop to inner rectangle (2 samples)',
     lambda im: [(f'{d:+d}', _rot_crop(im, d)) for d in (2, -2)]),
    ('rot_1_white', 'rotate', 'rotate +-1 deg, expanded canvas, white corners (2 samples)',
     lambda im: [(f'{d:+d}', _rot_white(im, d)) for d in (1, -1)]),
    ('rot_2_white', 'rotate', 'rotate +-2 deg, expanded canvas, white corners (2 samples)',
     lambda im: [(f'{d:+d}', _rot_white(im, d)) for d in (2, -2)]),
    ('grayscale', 'colour', 'convert to grayscale (phash already uses luma)',
     lambda im: [('', ImageOps.grayscale(im).convert('RGB'))]),
    ('grayscale_jpeg75', 'colour', 'grayscale, then JPEG q75',
     lambda im: [('', _jpeg(ImageOps.grayscale(im).convert('RGB'), 75))]),
    ('brightness_10', 'colour', 'brightness x1.10 and x0.90 (2 samples)',
     lambda im: [(f'x{f}', ImageEnhance.Brightness(im).enhance(f)) for f in (1.1, 0.9)]),
    ('contrast_10', 'colour', 'contrast x1.10 and x0.90 (2 samples)',
     lambda im: [(f'x{f}', ImageEnhance.Contrast(im).enhance(f)) for f in (1.1, 0.9)]),
    ('brightness_20', 'colour', 'brightness x1.20 and x0.80 (2 samples)',
     lambda im: [(f'x{f}', ImageEnhance.Brightness(im).enhance(f)) for f in (1.2, 0.8)]),
    ('saturation_20', 'colour', 'colour saturation x1.2 and x0.8 (2 samples)',
     lambda im: [(f'x{f}', ImageEnhance.Color(im).enhance(f)) for f in (1.2, 0.8)]),
    ('autocontrast', 'colour', 'ImageOps.autocontrast(cutoff=1)',
     lambda im: [('', ImageOps.autocontrast(im, cutoff=1))]),
    ('combo_resize50_q75_crop2', 'combo', '50% + JPEG q75 + 2% crop every side',
     lambda im: [('', _crop_sym(_jpeg(_scale(im, .5), 75), 2))]),
    ('combo_max512_q50_crop2one', 'combo', 'max side 512 + JPEG q50 + 2% one-side crop (4 samples)',
     lambda im: [(s, _crop_side(_jpeg(_max_side(im, 512), 50), 2, s)) for s in SIDES]),
    ('combo_crop3_resize25_q75_bright', 'combo', '3% crop every side + 25% + JPEG q75 + brightness x1.1',
     lambda im: [('', _jpeg(ImageEnhance.Brightness(_scale(_crop_sym(im, 3), .25)).enhance(1.1), 75))]),
    ('combo_rot1_crop2_max1024_q75', 'combo', 'rotate 1 deg (inner crop) + 2% one-side crop + max side 1024 + q75 (4 samples)',
     lambda im: [(s, _jpeg(_max_side(_crop_side(_rot_crop(im, 1), 2, s), 1024), 75)) for s in SIDES]),
    ('hflip', 'control', 'horizontal mirror (NOT a near-duplicate edit; negative control)',
     lambda im: [('', ImageOps.mirror(im))]),
]

# transform groups considered "must match" when recommending a threshold
CORE_BENIGN = ['jpeg_q95', 'jpeg_q75', 'jpeg_q50', 'webp_q80', 'resize_50', 'resize_25',
               'resize_50_up', 'resize_25_up', 'maxside_1024', 'maxside_512', 'maxside_256',
               'crop_sym_1', 'crop_sym_2', 'crop_one_1', 'crop_one_2', 'grayscale',
               'grayscale_jpeg75', 'brightness_10', 'contrast_10', 'combo_resize50_q75_crop2',
               'combo_max512_q50_crop2one']

# --------------------------------------------------------------------------
# statistics helpers
# --------------------------------------------------------------------------

def q(arr, p):
    """Quantile with the 'lower' (order-statistic) convention: a value that occurs."""
    return float(np.quantile(np.asarray(arr), p, method='lower')) if len(arr) else float('nan')


def q95(arr):
    return float(np.quantile(np.asarray(arr), .95, method='higher')) if len(arr) else float('nan')


def binom_cdf(d, n=NBITS, p=0.5):
    """P(D <= d) for D ~ Binomial(64, 1/2): distance between independent random 64-bit hashes."""
    from scipy.stats import binom
    return float(binom(n, p).cdf(d))


def balanced_null_cdf(d):
    """P(D <= d) for two independent random *balanced* hashes (32 ones each).

    phash thresholds the 64 DCT coefficients at their median, so (without ties)
    every hash has exactly 32 one-bits; then D = 2K with
    K ~ Hypergeometric(64, 32, 32) and D is always even."""
    from scipy.stats import hypergeom
    return float(hypergeom(NBITS, NBITS // 2, NBITS // 2).cdf(math.floor(d / 2)))


def betabinom_cdf(d, n, a, b):
    from scipy.stats import betabinom
    return float(betabinom(n, a, b).cdf(d))


def bb_params(mean, rho, n=NBITS):
    p = mean / n
    s = 1 / rho - 1
    return p * s, (1 - p) * s


def fit_betabinom(dist, n=NBITS):
    """Method-of-moments beta-binomial fit to distances in [0, n] -> (alpha, beta, rho)."""
    m = float(np.mean(dist))
    v = float(np.var(dist, ddof=1))
    p = m / n
    rho = (v / (n * p * (1 - p)) - 1) / (n - 1)
    if rho <= 0:
        return None
    return bb_params(m, rho, n) + (rho,)


def fit_betabinom_tail(dist, min_count=30, n=NBITS):
    """Beta-binomial with the observed mean whose overdispersion rho is chosen so
    that P(D <= d_anchor) equals the observed share, d_anchor being the smallest
    distance with at least `min_count` distinct pairs at or below it.
    Returns (alpha, beta, rho, d_anchor) or None."""
    from scipy.optimize import brentq
    dist = np.asarray(dist)
    m = float(dist.mean())
    for d_anchor in range(0, n + 1):
        cnt = int((dist <= d_anchor).sum())
        if cnt >= min_count:
            break
    target = cnt / len(dist)
    def f(r):
        return betabinom_cdf(d_anchor, n, *bb_params(m, r, n)) - target
    lo, hi = 1e-7, 0.5
    if f(lo) > 0 or f(hi) < 0:
        return None
    rho = brentq(f, lo, hi)
    return bb_params(m, rho, n) + (rho, d_anchor)


def fit_loglinear_tail(dist, min_count=5, max_share=0.05):
    """Straight line through log10 P(D<=d) over the even d of the lower tail: at least
    `min_count` pairs at or below d and a cumulative share of at most `max_share`.
    Returns (slope, intercept, d_list) or None."""
    dist = np.asarray(dist)
    ds = [d for d in range(0, NBITS + 1, 2)
          if (dist <= d).sum() >= min_count and (dist <= d).mean() <= max_share]
    if len(ds) < 2:
        return None
    ys = [math.log10((dist <= d).mean()) for d in ds]
    slope, icpt = np.polyfit(ds, ys, 1)
    return float(slope), float(icpt), ds


def fmt(x, nd=1):
    if isinstance(x, float) and math.isnan(x):
        return '-'
    if isinstance(x, (int, np.integer)) or float(x).is_integer():
        return str(int(x))
    return f'{x:.{nd}f}'


def sci(x):
    if x == 0:
        return '0'
    if x >= 0.01 and x < 1e5:
        return f'{x:.3g}'
    return f'{x:.2e}'

# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------

def list_images(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXT) and not f.startswith('.'))


def load_rgb(path):
    im = Image.open(path)
    im.load()
    if im.mode in ('RGBA', 'LA') or (im.mode == 'P' and 'transparency' in im.info):
        bg = Image.new('RGB', im.size, (255, 255, 255))
        bg.paste(im.convert('RGBA'), mask=im.convert('RGBA').split()[3])
        return bg
    return im.convert('RGB')

def measure_one(path):
    """Hash the original and every edit of one image; returns (size, hash, [(transform, variant, d)])."""
    im = load_rgb(path)
    h0 = phash64(im)
    rows = []
    for name, group, desc, fn in TRANSFORMS:
        for variant, t in fn(im):
            rows.append((name, variant, hamming(h0, phash64(t))))
    return im.size, h0, rows

# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('image_dirs', nargs='+', help='folders of distinct artworks')
    ap.add_argument('--versions', action='append', default=[],
                    help='folder of copies/versions of ONE composition (repeatable)')
    ap.add_argument('--pairs', type=float, default=3.2e9,
                    help='number of pairs to extrapolate false merges to (default 3.2e9 ~ 80k images)')
    ap.add_argument('--max-d', type=int, default=20, help='largest distance in the histograms')
    ap.add_argument('--hashes-csv', help='also write set,file,phash(hex),width,height of the originals here')
    ap.add_argument('--jobs', type=int, default=os.cpu_count() or 1, help='worker processes')
    args = ap.parse_args()
    out = sys.stdout.write

    import PIL
    import scipy
    out('# phash (imagehash.phash, hash_size=8) distance measurement\n\n')
    out(f'python {sys.version.split()[0]}, imagehash {imagehash.__version__}, Pillow {PIL.__version__}, '
        f'numpy {np.__version__}, scipy {scipy.__version__}\n\n')

    sets = OrderedDict()
    for d in args.image_dirs:
        name = os.path.basename(os.path.normpath(d))
        sets[name] = list_images(d)
        if not sets[name]:
            sys.exit(f'no images in {d}')

    # ---- per-image transforms ------------------------------------------------
    # dist[set][transform] -> list of distances ; worst[transform] -> (d, file, variant)
    dist = {s: defaultdict(list) for s in sets}
    worst = {s: {} for s in sets}
    orig_hash = {s: [] for s in sets}
    sizes = {s: [] for s in sets}
    jobs = [(s, f) for s, files in sets.items() for f in files]
    with Pool(args.jobs) as pool:
        results = pool.map(measure_one, [f for _, f in jobs], chunksize=1)
    for (s, f), (size, h0, rows) in zip(jobs, results):
        sizes[s].append(size)
        orig_hash[s].append(h0)
        for name, variant, d in rows:
            dist[s][name].append(d)
            if d > worst[s].get(name, (-1,))[0]:
                worst[s][name] = (d, os.path.basename(f), variant)

    if args.hashes_csv:
        import csv
        with open(args.hashes_csv, 'w', newline='') as fh:
            w = csv.writer(fh)
            w.writerow(['set', 'file', 'phash', 'width', 'height'])
            for s in sets:
                for f, h, (wd, ht) in zip(sets[s], orig_hash[s], sizes[s]):
                    w.writerow([s, os.path.basename(f), f'{h:016x}', wd, ht])

    out('## Inputs\n\n| set | images | median size (w x h) | min side | max side |\n|---|---|---|---|---|\n')
    for s in sets:
        w = [a for a, b in sizes[s]]
        h = [b for a, b in sizes[s]]
        out(f'| {s} | {len(sets[s])} | {int(np.median(w))} x {int(np.median(h))} | '
            f'{min(min(a, b) for a, b in sizes[s])} | {max(max(a, b) for a, b in sizes[s])} |\n')
    out('\n')

    # ---- table 1: transforms ------------------------------------------------
    def transform_table(title, set_names):
        out(f'## {title}\n\n')
        out('Hamming distance between the phash of the original and of the edited image. '
            'n = samples (images x variants). p95 uses the "higher" order statistic.\n\n')
        out('| transform | group | n | median | p95 | max | share <= 4 | share <= 8 | share <= 10 | worst case |\n')
        out('|---|---|---|---|---|---|---|---|---|---|\n')
        for name, group, desc, fn in TRANSFORMS:
            arr = np.concatenate([np.asarray(dist[s][name]) for s in set_names])
            wc = max((worst[s][name] + (s,) for s in set_names), key=lambda t: t[0])
            out(f'| {name} | {group} | {len(arr)} | {fmt(np.median(arr))} | {fmt(q95(arr))} | {arr.max()} | '
                f'{(arr <= 4).mean():.3f} | {(arr <= 8).mean():.3f} | {(arr <= 10).mean():.3f} | '
                f'{wc[0]}: {wc[1]}{(" " + wc[2]) if wc[2] else ""} |\n')
        out('\n')

    for s in sets:
        transform_table(f'Edits vs original — set `{s}`', [s])
    if len(sets) > 1:
        transform_table('Edits vs original — all sets together', list(sets))

    out('Transform descriptions:\n\n')
    for name, group, desc, fn in TRANSFORMS:
        out(f'- `{name}`: {desc}\n')
    out('\n')

    # ---- table 2: distinct pairs -------------------------------------------
    def pair_dists(hs):
        a = np.array(hs, dtype=np.uint64)
        i, j = np.triu_indices(len(a), k=1)
        return popcount64(a[i] ^ a[j]), i, j

    groups = OrderedDict((s, (orig_hash[s], sets[s])) for s in sets)
    if len(sets) > 1:
        groups['ALL (union)'] = (sum((orig_hash[s] for s in sets), []), sum((sets[s] for s in sets), []))

    out('## Distinct artworks: all pairs\n\n')
    out('| set | images | pairs | min | q0.1% | q1% | q5% | median | mean | sd | Binomial(64,1/2) sd |\n')
    out('|---|---|---|---|---|---|---|---|---|---|---|\n')
    pd_cache = {}
    for g, (hs, fs) in groups.items():
        d, i, j = pair_dists(hs)
        pd_cache[g] = (d, i, j, fs)
        out(f'| {g} | {len(hs)} | {len(d)} | {d.min()} | {fmt(q(d, .001))} | {fmt(q(d, .01))} | '
            f'{fmt(q(d, .05))} | {fmt(np.median(d))} | {d.mean():.2f} | {d.std(ddof=1):.2f} | 4.00 |\n')
    out('\nQuantiles use the lower order statistic. With P pairs the q0.1% is only the '
        '~P/1000-th smallest value, so it is noisy for small sets.\n\n')

    # histogram of small distances
    md = args.max_d
    allh = np.array(sum((orig_hash[s] for s in sets), []), dtype=np.uint64)
    weights = popcount64(allh)
    odd = sum(int((pd_cache[g][0] % 2 == 1).sum()) for g in groups)
    out(f'Hash weights (number of 1-bits) of the originals: min {weights.min()}, max {weights.max()}. '
        f'phash thresholds its 64 DCT coefficients at their median, so a hash has exactly 32 one-bits '
        f'unless coefficients tie, and the distance between two such hashes is always EVEN '
        f'(odd distances among the distinct pairs here: {odd}). A threshold "d <= 2k+1" therefore '
        f'behaves exactly like "d <= 2k". The exact null model for such hashes is D = 2K, '
        f'K ~ Hypergeometric(64, 32, 32) ("balanced null" below); Binomial(64, 1/2) is the textbook '
        f'reference for unconstrained random hashes.\n\n')
    out(f'### Histogram of small distances (distinct pairs, even d <= {md})\n\n')
    out('| d | ' + ' | '.join(f'{g} count' for g in groups) + ' | ' +
        ' | '.join(f'{g} P(D<=d)' for g in groups) + ' | Binomial(64,1/2) P(D<=d) | balanced null P(D<=d) |\n')
    out('|---|' + '---|' * (2 * len(groups) + 2) + '\n')
    for k in range(0, md + 1, 2):
        row = [str(k)]
        row += [str(int((pd_cache[g][0] == k).sum())) for g in groups]
        row += [sci(float((pd_cache[g][0] <= k).mean())) for g in groups]
        row.append(sci(binom_cdf(k)))
        row.append(sci(balanced_null_cdf(k)))
        out('| ' + ' | '.join(row) + ' |\n')
    out('\n')

    # closest distinct pairs
    g_all = list(groups)[-1]
    d, i, j, fs = pd_cache[g_all]
    order = np.argsort(d, kind='stable')[:15]
    out(f'### 15 closest distinct pairs ({g_all})\n\n| d | image A | image B |\n|---|---|---|\n')
    for k in order:
        out(f'| {d[k]} | {os.path.basename(fs[i[k]])} | {os.path.basename(fs[j[k]])} |\n')
    out('\n')

    # ---- versions (copies of one composition) ---------------------------------
    for vd in args.versions:
        files = list_images(vd)
        hs = [phash64(load_rgb(f)) for f in files]
        dv, iv, jv = pair_dists(hs)
        out(f'## Versions / copies of one composition: `{os.path.basename(os.path.normpath(vd))}`\n\n')
        out(f'{len(files)} images, {len(dv)} pairs: min {dv.min()}, median {fmt(np.median(dv))}, '
            f'max {dv.max()}, mean {dv.mean():.2f}. Pairs with d <= 10: {int((dv <= 10).sum())}, '
            f'd <= 16: {int((dv <= 16).sum())}.\n\n')
        out('| d | image A | image B |\n|---|---|---|\n')
        for k in np.argsort(dv, kind='stable')[:10]:
            out(f'| {dv[k]} | {os.path.basename(files[iv[k]])} | {os.path.basename(files[jv[k]])} |\n')
        out('\n')

    # ---- table 3: threshold candidates -----------------------------------------
    allsets = list(sets)
    core = np.concatenate([np.asarray(dist[s][t]) for s in allsets for t in CORE_BENIGN])
    crop3 = np.concatenate([np.asarray(dist[s][t]) for s in allsets for t in ('crop_sym_3', 'crop_one_3')])
    crop5 = np.concatenate([np.asarray(dist[s][t]) for s in allsets for t in ('crop_sym_5', 'crop_one_5')])
    rot = np.concatenate([np.asarray(dist[s][t]) for s in allsets for t in ('rot_1', 'rot_2')])
    combo = np.concatenate([np.asarray(dist[s][t]) for s in allsets for t in
                            ('combo_resize50_q75_crop2', 'combo_max512_q50_crop2one',
                             'combo_crop3_resize25_q75_bright', 'combo_rot1_crop2_max1024_q75')])
    dall = pd_cache[g_all][0]
    P = args.pairs

    out('## Threshold candidates\n\n')
    out(f'"core benign" = {", ".join(CORE_BENIGN)}.\n\n')
    out('### Share of edited copies still matched (distance to original <= d)\n\n')
    out('| d | core benign | crops 3% | crops 5% | rotations 1-2 deg (inner crop) | rotations 1-2 deg (white corners) | '
        'combos | white border 2% | distinct pairs <= d (observed) |\n|---|---|---|---|---|---|---|---|---|\n')
    rotw = np.concatenate([np.asarray(dist[s][t]) for s in allsets for t in ('rot_1_white', 'rot_2_white')])
    pad2 = np.concatenate([np.asarray(dist[s]['pad_white_2']) for s in allsets])
    for k in range(0, md + 1, 2):
        out(f'| {k} | {(core <= k).mean():.4f} | {(crop3 <= k).mean():.3f} | {(crop5 <= k).mean():.3f} | '
            f'{(rot <= k).mean():.3f} | {(rotw <= k).mean():.3f} | {(combo <= k).mean():.3f} | '
            f'{(pad2 <= k).mean():.3f} | {int((dall <= k).sum())}/{len(dall)} |\n')
    out('\n')

    mom = fit_betabinom(dall)
    tail = fit_betabinom_tail(dall)
    loglin = fit_loglinear_tail(dall)
    out(f'### False merges expected among {P:.3g} distinct pairs (extrapolation, an ESTIMATE)\n\n')
    out(f'The smallest observed distance between distinct artworks ({g_all}, {len(dall)} pairs) is '
        f'{int(dall.min())}, so P(D<=d) for smaller d cannot be read off the data: it has to come from a '
        'model fitted to the observable part of the distribution and extrapolated by many orders of '
        'magnitude. Five models, from optimistic to pessimistic:\n\n')
    out('1. **Binomial(64, 1/2)** — independent fair random bits (the textbook reference).\n')
    out('2. **Balanced null** — independent random hashes with 32 one-bits each (what phash '
        'produces): D = 2K, K ~ Hypergeometric(64,32,32).\n')
    if mom:
        out(f'3. **Beta-binomial, moment fit** — mean {dall.mean():.2f} and variance {dall.var(ddof=1):.2f} of the '
            f'observed distinct distances; alpha={mom[0]:.1f}, beta={mom[1]:.1f}, bit correlation rho={mom[2]:.4f}.\n')
    if tail:
        obs_a = (dall <= tail[3]).mean()
        out(f'4. **Beta-binomial, tail fit** — same mean, rho={tail[2]:.4f} chosen so that the model matches '
            f'the observed P(D<={tail[3]}) = {sci(obs_a)} ({int((dall <= tail[3]).sum())} pairs). '
            'This is the central estimate.\n')
    if loglin:
        out(f'5. *Log-linear* — straight line through log10 of the observed P(D<=d) at d = '
            f'{", ".join(map(str, loglin[2]))}; an exponential tail, deliberately pessimistic: lower-tail '
            'CDFs of sums of many bits bend downwards faster than exponentially.\n')
    out('\nObserved vs models where the data can be seen:\n\n')
    out('| d | observed P(D<=d) | binomial | balanced null | BB moment | BB tail | log-linear |\n'
        '|---|---|---|---|---|---|---|\n')
    lo_d = int(dall.min())
    for k in range(lo_d, lo_d + 14, 2):
        out(f'| {k} | {sci(float((dall <= k).mean()))} ({int((dall <= k).sum())}) | {sci(binom_cdf(k))} | '
            f'{sci(balanced_null_cdf(k))} | {sci(betabinom_cdf(k, NBITS, mom[0], mom[1])) if mom else "-"} | '
            f'{sci(betabinom_cdf(k, NBITS, tail[0], tail[1])) if tail else "-"} | '
            f'{sci(10 ** (loglin[0] * k + loglin[1])) if loglin else "-"} |\n')
    out('\nExtrapolated expected number of distinct pairs with distance <= d among '
        f'{P:.3g} pairs (= P(D<=d) x {P:.3g}):\n\n')
    out('| d | binomial | balanced null | BB moment | BB tail (central) | log-linear (pessimistic) |\n'
        '|---|---|---|---|---|---|\n')
    for k in range(0, md + 1, 2):
        cells = [sci(binom_cdf(k) * P), sci(balanced_null_cdf(k) * P),
                 sci(betabinom_cdf(k, NBITS, mom[0], mom[1]) * P) if mom else '-',
                 sci(betabinom_cdf(k, NBITS, tail[0], tail[1]) * P) if tail else '-',
                 sci(min(1.0, 10 ** (loglin[0] * k + loglin[1])) * P) if loglin else '-']
        out(f'| {k} | ' + ' | '.join(cells) + ' |\n')
    out('\n')


if __name__ == '__main__':
    main()
