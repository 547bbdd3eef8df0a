"""The Python API on its own: no shared data, no CLI."""

import json
import logging
import threading
import time

import numpy as np
import pytest

import r2unet
from conftest import fundus


@pytest.fixture(scope="module")
def model():
    return r2unet.load("drive")


def test_shipped_model_loads(model):
    assert "drive" in r2unet.shipped_models()
    assert model.architecture == "r2unet"
    assert model.in_channels == 1
    assert model.parameters == 612_369
    assert model.preprocess["kind"] == "retina"
    assert "r2unet" in repr(model)


def test_predict_and_segment_shapes_dtypes_and_agreement(model):
    img = fundus(72, 88, 1)
    prob = model.predict(img)
    assert prob.dtype == np.float32 and prob.shape == (72, 88)
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    # Outside the computed field of view (the black corners) probabilities are 0.
    assert prob[0, 0] == 0.0
    mask = model.segment(img, threshold=0.5)
    assert mask.dtype == np.uint8 and mask.shape == (72, 88)
    np.testing.assert_array_equal(mask, (prob >= 0.5).astype(np.uint8))
    low = model.segment(img, threshold=0.1)
    assert low.sum() >= mask.sum()


def test_rescale_to_the_training_fov_diameter(model):
    # The shipped DRIVE model records DRIVE's FOV diameter; this 88-pixel
    # wide picture is enlarged to it by default and segmented as it is with
    # rescale=False; both maps come back at the picture's size.
    assert model.preprocess["fov_diameter"] == 540.0
    img = fundus(72, 88, 1)
    scaled, native = model.predict(img), model.predict(img, rescale=False)
    assert scaled.shape == native.shape == (72, 88)
    assert np.abs(scaled - native).max() > 0.05
    np.testing.assert_array_equal(
        model.segment(img, rescale=False), (native >= 0.5).astype(np.uint8)
    )


def test_dtypes_and_layouts_mean_the_same_picture(model):
    img = fundus(64, 64, 2)
    p8 = model.predict(img)
    p16 = model.predict(img.astype(np.uint16) * 257)  # 8-bit values at 16-bit scale
    pf = model.predict(img.astype(np.float32) / 255.0)
    np.testing.assert_allclose(p16, p8, atol=1e-5)
    np.testing.assert_allclose(pf, p8, atol=1e-5)
    # A non-contiguous view (every other column reversed twice) reads the same.
    wide = np.ascontiguousarray(np.repeat(img, 2, axis=1))[:, ::2]
    np.testing.assert_array_equal(model.predict(wide), p8)
    # RGBA: alpha is ignored.
    rgba = np.concatenate([img, np.full((64, 64, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(model.predict(rgba), p8)


def test_fov_options(model):
    img = fundus(64, 64, 3)
    whole = model.predict(img, fov="none")
    assert whole[0, 0] >= 0.0
    fov = np.zeros((64, 64), np.uint8)
    fov[16:48, 16:48] = 1
    p = model.predict(img, fov=fov)
    assert (p[fov == 0] == 0).all()
    with pytest.raises(ValueError, match="fov"):
        model.predict(img, fov="everywhere")
    with pytest.raises(ValueError, match="field-of-view mask"):
        model.predict(img, fov=np.ones((10, 10), bool))


@pytest.mark.parametrize(
    "bad, expected",
    [
        (np.zeros((32, 32), np.float64), "dtype float64"),
        (np.zeros((2, 32, 32, 3), np.uint8), "shape"),
        (np.zeros((0, 32), np.uint8), "empty"),
        (np.zeros((32, 32, 2), np.uint8), "C = 1, 3 or 4"),
        (np.full((32, 32), np.nan, np.float32), "NaN"),
        (np.full((32, 32), 3.0, np.float32), r"\[0, 1\]"),
        ([[1, 2], [3, 4]], "numpy array"),
        (np.zeros((1, 1), np.uint8), "image"),
    ],
)
def test_bad_arrays_raise_value_error(model, bad, expected):
    with pytest.raises(ValueError, match=expected):
        model.predict(bad)


def test_fields_of_view_that_cannot_be_right_are_refused(model):
    # Nothing bright enough to be a fundus: no silent all-zero answer.
    with pytest.raises(ValueError, match="field of view: none found"):
        model.predict(np.full((64, 64), 0.03, np.float32))
    # A 3-pixel field of view would enlarge the image 180 times, past 64 MP.
    fov = np.zeros((64, 64), np.uint8)
    fov[30:33, 30:33] = 1
    with pytest.raises(ValueError, match="more than the default read limit of 64000000"):
        model.predict(fundus(64, 64, 7), fov=fov)
    assert model.predict(fundus(64, 64, 7), fov=fov, rescale=False).shape == (64, 64)


def test_bad_threshold_and_files(model, tmp_path):
    with pytest.raises(ValueError, match=r"threshold 1.5: expected a value in \(0, 1\)"):
        model.segment(fundus(32, 32, 4), threshold=1.5)
    with pytest.raises(OSError, match="missing.safetensors"):
        r2unet.load(str(tmp_path / "missing.safetensors"))
    with pytest.raises(OSError, match="not a shipped model.*drive"):
        r2unet.load("drve")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises((ValueError, OSError), match="broken.png"):
        model.segment_file(broken, tmp_path / "out")
    assert not (tmp_path / "out" / "broken_prob.png").exists()


def test_metrics_hand_computed():
    # The library's own hand-computed case: tp 2, fn 1, fp 2, tn 3.
    prob = np.array([[0.9, 0.6, 0.4, 0.2], [0.7, 0.1, 0.5, 0.3]], np.float32)
    label = np.array([[1, 1, 1, 0], [0, 0, 0, 0]], np.uint8)
    m = r2unet.metrics(prob, label)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 2, 3)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert m["dice"] == m["f1"]
    assert m["sensitivity"] == pytest.approx(2 / 3)
    # Positives 0.9, 0.6, 0.4 outrank 5 + 4 + 3 of the 15 pairs.
    assert m["auc"] == pytest.approx(12 / 15)
    # A field of view removes the last column from every count.
    fov = np.ones((2, 4), bool)
    fov[:, 3] = False
    m = r2unet.metrics(prob.astype(np.float64), label.astype(bool), fov=fov)
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == 6


def test_metrics_bad_input():
    p = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="expected the shape of prob"):
        r2unet.metrics(p, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="only 0 and 1"):
        r2unet.metrics(p, np.full((4, 4), 255, np.uint8))
    with pytest.raises(ValueError, match="fov: holds no 1"):
        r2unet.metrics(p, np.zeros((4, 4), np.uint8), fov=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="probabilities in"):
        r2unet.metrics(np.full((4, 4), np.nan, np.float32), np.zeros((4, 4), np.uint8))


def test_predict_releases_the_gil(model):
    img = fundus(192, 192, 5)
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    model.predict(img)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    # With the GIL held the counter could not run at all during predict.
    assert ticks > min(20, elapsed * 100), (ticks, elapsed)


def test_train_logs_progress_and_gives_a_loadable_model(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="r2unet")
    run = tmp_path / "run"
    state = r2unet.train(
        run, dataset="synthetic", epochs=1, synthetic_images=4, patches_per_image=40,
        schedule="one-cycle",
    )
    assert state["epoch"] == 1
    assert json.loads((run / "config.json").read_text())["schedule"] == "one-cycle"
    assert any("epoch 1 done" in r.message for r in caplog.records), caplog.text
    trained = r2unet.load(str(run / "best.safetensors"))
    assert trained.predict(fundus(48, 48, 6)).shape == (48, 48)
    with pytest.raises(ValueError, match="needs the path"):
        r2unet.train(tmp_path / "run2", dataset="drive")


def test_train_refuses_bad_options(tmp_path):
    for kwargs, expected in [
        ({"loss": "focal"}, "loss `focal`"),
        ({"schedule": "step"}, "schedule `step`"),
        ({"protocol": "paper", "epochs": 3}, "fixes the budget"),
        ({"protocol": "fast"}, "protocol `fast`"),
        ({"bn": "batch"}, "batch"),
        ({"data": "DRIVE"}, "generated"),
        ({"widths": [4, 8, 16], "patch_size": 30}, "multiple of 4"),
    ]:
        with pytest.raises(ValueError, match=expected):
            r2unet.train(tmp_path / "r", dataset="synthetic", **kwargs)


def test_bf16_precision_is_close_to_f32_or_refused_with_why(model, tmp_path):
    image = fundus(96, 96, 11)
    assert r2unet.precision() == "f32"
    with pytest.raises(ValueError, match='precision "fp8"'):
        r2unet.set_precision("fp8")
    try:
        r2unet.set_precision("bf16")
    except ValueError as e:
        assert "AVX512_BF16" in str(e) or "R2UNET" in str(e), e
        assert r2unet.precision() == "f32"
        with pytest.raises(ValueError, match="precision bf16"):
            r2unet.train(tmp_path / "run", dataset="synthetic", precision="bf16")
        return
    try:
        assert r2unet.precision() == "bf16"
        low = model.predict(image)
        # A run trains in its own precision (bf16 here) and restores the process's.
        r2unet.train(
            tmp_path / "run", dataset="synthetic", epochs=1, synthetic_images=2,
            patches_per_image=20, precision="bf16",
        )
        assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"
        assert r2unet.precision() == "bf16"
        r2unet.train(
            tmp_path / "run32", dataset="synthetic", epochs=1, synthetic_images=2,
            patches_per_image=20,
        )
        assert "precision" not in json.loads((tmp_path / "run32" / "config.json").read_text())
        assert r2unet.precision() == "bf16"
    finally:
        r2unet.set_precision("f32")
    full = model.predict(image)
    assert low.dtype == np.float32 and low.shape == full.shape
    # bf16 keeps about 3 significant digits per product: close on average,
    # a few pixels near the steep part of the sigmoid move more (0.14 here).
    diff = np.abs(low - full)
    assert float(diff.mean()) < 0.01 and float(np.quantile(diff, 0.99)) < 0.05, diff.max()
    assert not np.array_equal(low, full)
