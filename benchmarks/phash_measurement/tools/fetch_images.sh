#!/bin/bash
# Rebuild the measurement's image folders (images/) from Debian bookworm + PyPI packages.
# usage: tools/fetch_images.sh [WORKDIR]   (default: the folder above tools/)
# Needs: apt-get (after apt-get update), dpkg, and the venv with pillow/numpy.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-$HERE}
PY=${PY:-$HERE/venv/bin/python}
DEBS=$W/debs; X=$DEBS/x; IMG=$W/images
mkdir -p "$DEBS" "$X" "$IMG/real" "$IMG/versions/raphael_bridgewater_madonna" "$W/pypi"

PKGS="gcompris-qt-data=3.1-2 opencv-doc=4.6.0+dfsg-12"
for c in data dm did httt low l trow tsg ttb sota; do PKGS="$PKGS wesnoth-1.16-$c=1:1.16.9-1"; done
( cd "$DEBS" && for p in $PKGS; do n=${p%%=*}; ls ${n}_*.deb >/dev/null 2>&1 || apt-get download "$p"; done )
for f in "$DEBS"/gcompris-qt-data_*.deb "$DEBS"/opencv-doc_*.deb "$DEBS"/wesnoth-1.16-*.deb; do dpkg -x "$f" "$X"; done

# GCompris: extract the three activities' Qt resource files, rebuild whole paintings
for a in paintings babyshapes details; do
  "$PY" "$HERE/tools/rcc_extract.py" "$X/usr/share/gcompris-qt/rcc/$a.rcc" "$W/rcc_out/$a" >/dev/null
done
"$PY" "$HERE/tools/build_gcompris_set.py" "$W/rcc_out" "$IMG/gcompris_all"
cp "$IMG"/gcompris_all/gcompris_paintings_* "$IMG/real/"
cp "$IMG"/gcompris_all/gcompris_babyshapes_{Paul,Pieter,The_Lady,Vincent,Ambrosius}* "$IMG/real/"
cp "$IMG"/gcompris_all/gcompris_details_Vincent* "$IMG/real/"
# OpenCV sample image
cp "$X/usr/share/doc/opencv-doc/examples/data/starry_night.jpg" "$IMG/real/opencv_starry_night.jpg"
# unraphael (PyPI): 11 versions of Raphael's Bridgewater Madonna
( cd "$W/pypi" && ls unraphael-0.2.1-*.whl >/dev/null 2>&1 || "$HERE/venv/bin/pip" download --no-deps -q unraphael==0.2.1 -d . )
"$PY" - "$W/pypi" "$IMG/versions/raphael_bridgewater_madonna" <<'PYEOF'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], 'unraphael-0.2.1-*.whl'))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith('unraphael/data/images/') and n.endswith('.jpg'):
            open(os.path.join(sys.argv[2], os.path.basename(n)), 'wb').write(z.read(n))
PYEOF
cp "$IMG/versions/raphael_bridgewater_madonna/1_london_nat_gallery.jpg" \
   "$IMG/real/unraphael_Raphael_Bridgewater_Madonna_version_London_NG.jpg"
# Wesnoth story art (digital paintings)
"$PY" "$HERE/tools/select_wesnoth.py" "$X" "$IMG"
echo "real: $(ls "$IMG/real" | wc -l)  digital: $(ls "$IMG/digital" | wc -l)"
