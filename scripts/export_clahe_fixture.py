"""Export OpenCV CLAHE fixtures for the r2unet CLAHE test.

Writes tests/fixtures/clahe/{in,out}_{W}x{H}.png: a seeded synthetic 8-bit
image (smooth blobs + gradient + noise) and cv2.createCLAHE(clipLimit=2.0,
tileGridSize=(8, 8)).apply() of it, for a size that divides into 8x8 tiles
and one that does not (OpenCV pads by reflection).

Usage: python export_clahe_fixture.py OUT_DIR   (needs numpy, opencv-python-headless)
"""
import os
import sys

import cv2
import numpy as np


def synthetic(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 40 + 60 * x / w + 30 * y / h
    for _ in range(6):
        cx, cy, r, a = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, w / 3), rng.uniform(-60, 90)
        img += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    for (w, h, seed) in [(64, 56, 0), (61, 53, 1)]:
        img = synthetic(w, h, seed)
        cv2.imwrite(os.path.join(out, f"in_{w}x{h}.png"), img)
        cv2.imwrite(os.path.join(out, f"out_{w}x{h}.png"), clahe.apply(img))
    print("opencv", cv2.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
