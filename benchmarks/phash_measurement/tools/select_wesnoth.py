"""Select full-frame digital paintings ('story' art) from extracted Wesnoth 1.16 packages.

usage: select_wesnoth.py EXTRACTED_ROOT OUT_IMAGES_DIR

* keeps every file under .../images/story/ that is fully opaque (portrait cut-outs
  with transparency, logos and the plain black background are dropped);
* byte-identical files are kept once;
* 'Secrets of the Ancients' story images are in-game map/sprite renders, not
  paintings -> images/excluded_wesnoth_game_screens/ (not used);
* edited variants of one picture go to images/versions/<family>/ (one member of
  each family also stays in images/digital/ as the distinct representative).
"""
import glob
import hashlib
import os
import shutil
import sys
import numpy as np
from PIL import Image

root, out = sys.argv[1], sys.argv[2]
base = os.path.join(root, 'usr/share/games/wesnoth/1.16')
digital = os.path.join(out, 'digital')
excluded = os.path.join(out, 'excluded_wesnoth_game_screens')
for d in (digital, excluded):
    os.makedirs(d, exist_ok=True)

FAMILIES = {  # family -> (kept representative, [other members moved out of digital/])
    'wesnoth_battlefield': ('wesnoth_core_landscape-battlefield.jpg',
                            ['wesnoth_core_landscape-battlefield_nohumans.jpg']),
    'wesnoth_bridge': ('wesnoth_core_landscape-bridge.jpg', ['wesnoth_core_landscape-bridge_sun.jpg']),
    'wesnoth_trow_intro_tree': ('wesnoth_The_Rise_Of_Wesnoth_trow_intro_01.jpg',
                                ['wesnoth_The_Rise_Of_Wesnoth_trow_intro_02.jpg']),
    'wesnoth_south_guard_seasons': ('wesnoth_The_South_Guard_summer.jpg',
                                    ['wesnoth_The_South_Guard_fall.jpg', 'wesnoth_The_South_Guard_winter.jpg']),
}

files = sorted(f for f in glob.glob(f'{base}/**/images/story/**/*', recursive=True) if os.path.isfile(f))
seen = set()
for f in files:
    h = hashlib.md5(open(f, 'rb').read()).hexdigest()
    if h in seen:
        continue
    seen.add(h)
    if 'logo' in f or 'black-background' in f:
        continue
    im = Image.open(f)
    if im.mode in ('RGBA', 'LA', 'P') and (np.asarray(im.convert('RGBA'))[..., 3] < 250).any():
        continue
    parts = f.split('/')
    camp = parts[parts.index('campaigns') + 1] if 'campaigns' in parts else 'core'
    name = f'wesnoth_{camp}_{os.path.basename(f)}'
    dst = excluded if camp == 'Secrets_of_the_Ancients' else digital
    shutil.copy(f, os.path.join(dst, name))

for fam, (rep, others) in FAMILIES.items():
    fd = os.path.join(out, 'versions', fam)
    os.makedirs(fd, exist_ok=True)
    shutil.copy(os.path.join(digital, rep), fd)
    for o in others:
        shutil.move(os.path.join(digital, o), os.path.join(fd, o))

print(len(os.listdir(digital)), 'digital paintings;', len(os.listdir(excluded)), 'game screens excluded')
