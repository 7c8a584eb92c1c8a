#!/usr/bin/env python3
"""Make kernels-tests/data/train: 8 real photos from scikit-image's bundled data as 32x32 RGB PNGs
with one-line captions, for the training tests.

Usage:
    pip download scikit-image==0.26.0 --no-deps -d WHEEL && unzip WHEEL/*.whl 'skimage/data/*' -d SK
    python3 tools/make_train_images.py SK [OUT] [SIZE]

SK is the folder the wheel was unzipped into (it holds skimage/data/); OUT defaults to
kernels-tests/data/train beside this script's repository, SIZE to 32 (tools/make_default_weights.sh
uses 72). Each image is centre-cropped to a square (the shorter side; offsets
floor((long - short) / 2)), resized to SIZE x SIZE with Pillow's bicubic filter and saved as RGB
PNG. Needs Pillow only.
"""

import sys
from pathlib import Path

from PIL import Image

SIZE = 32

# (output name, file in skimage/data, caption)
IMAGES = [
    ("astronaut", "astronaut.png", "a photo of an astronaut in front of a flag."),
    ("chelsea", "chelsea.png", "a photo of a cat."),
    ("coffee", "coffee.png", "a photo of a cup of coffee."),
    ("hubble_deep_field", "hubble_deep_field.jpg", "a photo of galaxies in deep space."),
    ("ihc", "ihc.png", "a microscope image of stained tissue."),
    ("motorcycle", "motorcycle_left.png", "a photo of a motorcycle."),
    ("retina", "retina.jpg", "a photo of a human retina."),
    ("rocket", "rocket.jpg", "a photo of a rocket launch."),
]


def main() -> None:
    if len(sys.argv) not in (2, 3, 4):
        sys.exit(__doc__)
    src = Path(sys.argv[1]) / "skimage" / "data"
    if not src.is_dir():
        sys.exit(f"{src} not found: pass the folder the scikit-image wheel was unzipped into")
    size = int(sys.argv[3]) if len(sys.argv) == 4 else SIZE
    out = (
        Path(sys.argv[2])
        if len(sys.argv) >= 3
        else Path(__file__).resolve().parent.parent / "kernels-tests" / "data" / "train"
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, file, caption in IMAGES:
        im = Image.open(src / file).convert("RGB")
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
        im.save(out / f"{name}.png", optimize=True)
        (out / f"{name}.txt").write_text(caption + "\n")
        print(f"{name}.png  <- {file} {w}x{h}, crop {s}x{s} at ({left}, {top})")


if __name__ == "__main__":
    main()
