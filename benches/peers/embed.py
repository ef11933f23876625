"""Python onnxruntime + Pillow, the peer of `curate embed` (benches/peers/embed.sh): the same
images, the same MobileNetV2 file and the same preprocessing (decode, with Pillow's `draft`
DCT-domain downscaling as curate's decoder does; bilinear resize to 224 x 224; ImageNet
normalisation; NCHW), in batches of 32, on 1 or 2 threads. Prints images/s end to end,
including the interpreter's start and the session's creation, as `curate embed` is timed.

    python embed.py make-photos SRC_DIR OUT_DIR N   # random crops, 640 x 480, JPEG q90
    python embed.py run MODEL THREADS FILE_LIST     # one run; prints `images_per_s=...`
"""
import os
import random
import sys
import time

START = time.perf_counter()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def make_photos(src, out, n):
    rng = random.Random(7)
    os.makedirs(out, exist_ok=True)
    sources = [Image.open(os.path.join(src, f)).convert("RGB") for f in sorted(os.listdir(src))]
    for i in range(n):
        img = sources[i % len(sources)]
        w, h = img.size
        cw, ch = rng.randint(w // 2, w), rng.randint(h // 2, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.BILINEAR)
        crop.save(os.path.join(out, f"photo_{i:04}.jpg"), quality=90)


def tensor(path):
    img = Image.open(path)
    img.draft("RGB", (224, 224))
    a = np.asarray(img.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def run(model, threads, files):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = 0
    for i in range(0, len(files), 32):
        batch = np.stack([tensor(f) for f in files[i : i + 32]])
        (emb,) = session.run(["embedding"], {"input": batch})
        out += emb.shape[0]
    seconds = time.perf_counter() - START
    print(f"onnxruntime {ort.__version__} + Pillow {Image.__version__}: {out} images, {threads} thread(s), {seconds:.2f} s")
    print(f"images_per_s={out / seconds:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "make-photos":
        make_photos(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        with open(sys.argv[4]) as f:
            files = [l.strip() for l in f if l.strip()]
        run(sys.argv[2], int(sys.argv[3]), files)
