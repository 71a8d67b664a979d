"""Rebuild whole painting images from GCompris-qt 3.1 (Debian gcompris-qt-data 3.1-2) resources.

* details/     : *_background.webp are complete paintings -> copied (only the painting boards).
* babyshapes/  : *_background.webp have white holes; the cut-out pieces are pasted back
                 (centre at x*W, y*H, native size, as GCompris' babymatch engine does).
* paintings/   : the painting is only shipped as jigsaw pieces (RGBA); they are composited
                 on a W x H canvas (from the board's bg.svg width/height) and cropped to the
                 union of the pieces' alpha.
Output: lossless PNG, one per painting, named after the board's caption.
"""
import glob
import os
import re
import sys
import numpy as np
from PIL import Image

RCC = sys.argv[1]          # folder holding the extracted rcc trees (rcc_out)
OUT = sys.argv[2]
os.makedirs(OUT, exist_ok=True)

def parse_board(path):
    txt = open(path, encoding='utf-8').read()
    m = re.search(r'instruction:\s*qsTr\("([^"]*)"\)', txt)
    caption = m.group(1) if m else os.path.basename(path)
    items = []
    for block in re.findall(r'\{([^{}]*)\}', txt):
        d = dict(re.findall(r'"(\w+)"\s*:\s*"?([^",\n]*)"?', block))
        if 'pixmapfile' in d:
            items.append(d)
    return caption, items

def slug(s):
    return re.sub(r'[^A-Za-z0-9]+', '_', s).strip('_')[:80]

def build(activity, only_paintings=True):
    base = glob.glob(f'{RCC}/{activity}/gcompris/src/activities/{activity}/resource')[0]
    out = []
    for board in sorted(glob.glob(f'{base}/board/*.qml')):
        caption, items = parse_board(board)
        bgs = [i for i in items if i.get('type') == 'SHAPE_BACKGROUND_IMAGE']
        pieces = [i for i in items if 'x' in i and 'y' in i and i.get('type') != 'SHAPE_BACKGROUND_IMAGE']
        if not bgs:
            continue
        bg = bgs[0]
        if bg['pixmapfile'].endswith('.webp'):
            canvas = Image.open(f"{base}/{bg['pixmapfile']}").convert('RGBA')
            paste = activity == 'babyshapes'
        else:
            canvas = Image.new('RGBA', (int(bg['width']), int(bg['height'])), (0, 0, 0, 0))
            paste = True
        W, H = canvas.size
        if paste:
            for p in pieces:
                im = Image.open(f"{base}/{p['pixmapfile']}").convert('RGBA')
                cx, cy = float(p['x']) * W, float(p['y']) * H
                canvas.alpha_composite(im, (int(round(cx - im.width / 2)), int(round(cy - im.height / 2))))
        a = np.asarray(canvas)
        ys, xs = np.nonzero(a[..., 3] > 0)
        canvas = canvas.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        # flatten any remaining (seam) transparency on white
        flat = Image.new('RGB', canvas.size, (255, 255, 255))
        flat.paste(canvas, mask=canvas.split()[3])
        name = f"gcompris_{activity}_{slug(caption)}.png"
        flat.save(os.path.join(OUT, name))
        out.append((name, caption, flat.size))
    return out

for act in ('paintings', 'babyshapes', 'details'):
    for name, cap, size in build(act):
        print(act, size, cap, '->', name)
