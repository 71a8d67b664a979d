"""Minimal Qt binary resource (.rcc) extractor (format versions 1-3, zlib; zstd if module available)."""
import struct
import sys
import zlib
import os

def extract(path, outdir):
    b = open(path, 'rb').read()
    assert b[:4] == b'qres'
    ver, tree, data, names = struct.unpack('>IIII', b[4:20])
    entry = 22 if ver >= 2 else 14
    def name_at(off):
        n, = struct.unpack('>H', b[names+off:names+off+2])
        return b[names+off+6:names+off+6+2*n].decode('utf-16-be')
    out = []
    def walk(idx, prefix):
        p = tree + idx * entry
        noff, flags = struct.unpack('>IH', b[p:p+6])
        name = name_at(noff) if idx else ''
        full = os.path.join(prefix, name)
        if flags & 2:
            cnt, first = struct.unpack('>II', b[p+6:p+14])
            for i in range(cnt):
                walk(first + i, full)
        else:
            doff, = struct.unpack('>I', b[p+10:p+14])
            q = data + doff
            ln, = struct.unpack('>I', b[q:q+4])
            blob = b[q+4:q+4+ln]
            if flags & 1:
                blob = zlib.decompress(blob[4:])
            elif flags & 4:
                import zstandard
                blob = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 28)
            dst = os.path.join(outdir, full.lstrip('/'))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            open(dst, 'wb').write(blob)
            out.append(dst)
    walk(0, '')
    return out

if __name__ == '__main__':
    for f in extract(sys.argv[1], sys.argv[2]):
        print(os.path.getsize(f), f)
