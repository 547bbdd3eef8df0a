"""NIfTI volumes through `r2unet predict`: outputs keep the input's shape,
voxel sizes and affine, and the mask lines up with a hand-made phantom."""

import numpy as np
import pytest

from conftest import ROOT, run_cli

nib = pytest.importorskip("nibabel")


def phantom(nx=128, ny=112, nz=6):
    """A chest-like CT phantom in HU: air outside, soft tissue body, two air-
    filled lungs; the left lung (low x) only in slices 0-3, so a flipped or
    transposed output cannot line up."""
    x, y = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    body = ((x - nx / 2) / (0.45 * nx)) ** 2 + ((y - ny / 2) / (0.4 * ny)) ** 2 < 1
    left = ((x - 0.32 * nx) / (0.12 * nx)) ** 2 + ((y - ny / 2) / (0.25 * ny)) ** 2 < 1
    right = ((x - 0.68 * nx) / (0.12 * nx)) ** 2 + ((y - ny / 2) / (0.25 * ny)) ** 2 < 1
    vol = np.full((nx, ny, nz), -1000.0, np.float32)
    lungs = np.zeros((nx, ny, nz), bool)
    for z in range(nz):
        s = np.where(body, 40.0, -1000.0)
        s[right] = -850.0
        lungs[..., z] |= right
        if z < 4:
            s[left] = -850.0
            lungs[..., z] |= left
        vol[..., z] = s + np.random.default_rng(z).normal(0, 15, (nx, ny))
    return vol.astype(np.int16), lungs, left


def test_volume_in_volume_out_with_its_geometry(cli, tmp_path):
    vol, lungs, left = phantom()
    # An oblique affine with anisotropic voxels: what 3D Slicer checks.
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([
        [0.7 * c, -0.7 * s, 0.0, -40.0],
        [0.7 * s, 0.7 * c, 0.0, 25.0],
        [0.0, 0.0, 2.5, -100.0],
        [0.0, 0.0, 0.0, 1.0],
    ])
    img = nib.Nifti1Image(vol, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=2)
    scan = tmp_path / "scan.nii.gz"
    nib.save(img, scan)
    weights = ROOT / "weights/lung-r2unet.safetensors"
    out = run_cli(cli, "predict", scan, "--weights", weights, "-o", tmp_path / "out")
    assert "scan_mask.nii.gz" in out.stdout
    source = nib.load(scan)
    for name, dtype in [("scan_mask.nii.gz", np.uint8), ("scan_prob.nii.gz", np.float32)]:
        got = nib.load(tmp_path / "out" / name)
        assert got.shape == source.shape
        assert got.get_data_dtype() == dtype
        np.testing.assert_allclose(got.affine, source.affine, atol=1e-5)
        np.testing.assert_allclose(got.header.get_zooms(), source.header.get_zooms())
        np.testing.assert_allclose(got.header.get_qform(), source.header.get_qform(), atol=1e-5)
        assert int(got.header["qform_code"]) == 1 and int(got.header["sform_code"]) == 2
    mask = np.asarray(nib.load(tmp_path / "out" / "scan_mask.nii.gz").dataobj)
    prob = np.asarray(nib.load(tmp_path / "out" / "scan_prob.nii.gz").dataobj)
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask, (prob >= 0.5).astype(np.uint8))
    # The mask lies on the phantom's lungs, slice by slice and voxel by voxel.
    dice = 2 * (mask.astype(bool) & lungs).sum() / (mask.sum() + lungs.sum())
    print(f"phantom lung Dice {dice:.3f}")
    assert dice > 0.7, dice
    # (A flat phantom is not a CT scan: the model finds most, not all, of
    # each lung; alignment is what is checked.)
    assert mask[left, :4].mean() > 0.5, mask[left, :4].mean()
    assert mask[left, 4:].mean() < 0.05, mask[left, 4:].mean()
    assert mask[~lungs].mean() < 0.05, mask[~lungs].mean()


def test_a_ct_model_takes_hounsfield_arrays_as_the_volume_path_does(cli, tmp_path):
    import r2unet

    weights = ROOT / "weights/lung-r2unet.safetensors"
    model = r2unet.load(str(weights))
    assert model.preprocess["hu_window"] == [-1000.0, 400.0]
    vol, _, _ = phantom(nz=2)
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), scan)
    run_cli(cli, "predict", scan, "--weights", weights, "-o", tmp_path / "out")
    prob = np.asarray(nib.load(tmp_path / "out" / "scan_prob.nii.gz").dataobj)
    for z in range(2):
        # A slice of the volume is an image with x across: the array's transpose.
        hu = np.ascontiguousarray(vol[..., z].T)
        got = model.predict(hu)
        np.testing.assert_allclose(got, prob[..., z].T, atol=1e-6)
        np.testing.assert_allclose(model.predict(hu.astype(np.float32)), got, atol=1e-6)
    with pytest.raises(ValueError, match="Hounsfield units"):
        model.predict(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="finite"):
        model.predict(np.full((64, 64), np.nan, np.float32))


def test_a_broken_volume_is_named(cli, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not a volume")
    import subprocess
    out = subprocess.run([str(cli), "predict", str(bad), "-o", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "broken.nii.gz" in out.stderr
