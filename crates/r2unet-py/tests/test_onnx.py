"""ONNX export checked in ONNX Runtime: every model kind and batch-norm mode
against r2unet's own forward pass, and the shipped DRIVE model's test AUC."""

import numpy as np
import pytest

import r2unet

ort = pytest.importorskip("onnxruntime")

KINDS = [
    ("unet", "shared"),
    ("resunet", "shared"),
    ("runet", "shared"),
    ("runet", "per-step"),
    ("r2unet", "shared"),
    ("r2unet", "per-step"),
    ("attr2unet", "shared"),
    ("attr2unet", "per-step"),
]


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind, bn", KINDS)
def test_every_kind_matches_onnxruntime(kind, bn, tmp_path):
    # A short training run, so batch norm's running statistics are not the
    # identity and folding them into the convolutions is really tested.
    run = tmp_path / "run"
    r2unet.train(run, dataset="synthetic", model=kind, bn=bn, epochs=1,
                 synthetic_images=3, patches_per_image=16, batch_size=8)
    model = r2unet.load(str(run / "last.safetensors"))
    assert model.architecture == kind
    model.export_onnx(tmp_path / "m.onnx")
    model.export_onnx(tmp_path / "p.onnx", probabilities=True)
    rng = np.random.default_rng(1)
    # Dynamic batch, height and width: two shapes through one file.
    for shape in [(2, 1, 48, 40), (1, 1, 16, 72)]:
        x = rng.random(shape, dtype=np.float32)
        want = model.forward(x)
        got = session(tmp_path / "m.onnx").run(["logits"], {"input": x})[0]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4, (kind, bn, np.abs(got - want).max())
        probs = session(tmp_path / "p.onnx").run(["probabilities"], {"input": x})[0]
        np.testing.assert_allclose(probs, 1 / (1 + np.exp(-want)), atol=1e-5)


def test_bad_network_input_is_refused():
    model = r2unet.load("drive")
    with pytest.raises(ValueError, match="multiples of 8"):
        model.forward(np.zeros((1, 1, 20, 20), np.float32))
    with pytest.raises(ValueError, match="1 channel"):
        model.forward(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="float32"):
        model.forward(np.zeros((1, 1, 16, 16), np.float64))


def test_drive_auc_through_onnxruntime_equals_r2unet(drive, tmp_path):
    model = r2unet.load("drive")
    model.export_onnx(tmp_path / "drive.onnx")
    ort_session = session(tmp_path / "drive.onnx")
    ours, theirs, labels = [], [], []
    for i in range(1, 21):
        image = r2unet.read_image(drive / f"test/images/{i:02d}_test.tif")
        fov = r2unet.read_mask(drive / f"test/mask/{i:02d}_test_mask.gif").astype(bool)
        label = r2unet.read_mask(drive / f"test/1st_manual/{i:02d}_manual1.gif")
        h, w = label.shape
        x = model.network_input(image)
        logits = ort_session.run(["logits"], {"input": x})[0][0, 0, :h, :w]
        theirs.append((1 / (1 + np.exp(-logits.astype(np.float64))))[fov])
        ours.append(model.predict(image, fov=fov.astype(np.uint8))[fov])
        labels.append(label[fov])
    label = np.concatenate(labels)[None, :]
    ours = r2unet.metrics(np.concatenate(ours)[None, :], label)
    theirs = r2unet.metrics(np.concatenate(theirs)[None, :], label)
    print(f"DRIVE test AUC: r2unet {ours['auc']:.6f}, onnxruntime {theirs['auc']:.6f}")
    assert abs(ours["auc"] - theirs["auc"]) <= 1e-5
    assert abs(ours["auc"] - 0.9802) < 5e-5
