"""Pillow's decode + resize per core on the photos that `cargo bench --bench decode` wrote
(CURATE_DECODE_DIR), with and without `draft` (DCT-domain downscaling), into the same
224 x 224 normalised float32 tensor. Not part of CI: run benches/peers/decode.sh."""
import os
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def tensor(img):
    a = np.asarray(img.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def run(files, draft):
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for f in files:
            img = Image.open(f)
            if draft:
                img.draft("RGB", (224, 224))
            tensor(img)
        best = min(best, time.perf_counter() - t)
    return len(files) / best


def main():
    folder = os.environ.get("CURATE_DECODE_DIR") or sys.argv[1]
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))
    plain = run(files, False)
    draft = run(files, True)
    print(f"Pillow {Image.__version__}, {len(files)} photos, 1 thread, best of 3:")
    print(f"  Pillow decode + resize:          {plain:.1f} images/s")
    print(f"  Pillow draft + decode + resize:  {draft:.1f} images/s")
    print(f"pillow_plain={plain:.3f} pillow_draft={draft:.3f}")


if __name__ == "__main__":
    main()
