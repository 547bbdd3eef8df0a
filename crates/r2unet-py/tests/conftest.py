"""Shared fixtures: the repository root, the CLI binary, the shared data."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def cli():
    """The r2unet binary: $R2UNET_CLI, else target/debug or target/release."""
    env = os.environ.get("R2UNET_CLI")
    candidates = [pathlib.Path(env)] if env else [
        ROOT / "target/debug/r2unet",
        ROOT / "target/release/r2unet",
    ]
    for c in candidates:
        if c.is_file():
            return c
    pytest.skip(f"skipped: no r2unet binary (tried {', '.join(map(str, candidates))}); "
                "build it with cargo build or set R2UNET_CLI")


def run_cli(cli, *args):
    out = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="session")
def drive():
    """DRIVE under $R2UNET_DATA or ../shared/data, else the test is skipped."""
    root = pathlib.Path(os.environ.get("R2UNET_DATA", ROOT.parent / "shared" / "data"))
    d = root / "DRIVE"
    if not d.is_dir():
        pytest.skip(f"skipped: {d} not found (real-data tests need the shared data)")
    return d


def fundus(h, w, seed):
    """A uint8 RGB picture that looks enough like a fundus photograph: a
    bright disc on black, with dark curved lines (vessels) and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx, r = h / 2, w / 2, min(h, w) * 0.45
    inside = (y - cy) ** 2 + (x - cx) ** 2 < r * r
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0], img[..., 1], img[..., 2] = 180, 90, 40
    for k in range(6):
        a, b, c = rng.uniform(-1, 1, 3)
        d = np.abs(np.sin((x / w) * (2 + k) * a + b) * h * 0.4 + cy * c - (y - cy) * 0.5)
        img[..., 1] -= 60 * np.exp(-(d / 1.5) ** 2)
    img += rng.normal(0, 4, img.shape)
    img[~inside] = 0
    return np.clip(img, 0, 255).astype(np.uint8)
