"""The Python API against the CLI on real DRIVE images: same probabilities as
`r2unet predict`, same metrics as `r2unet eval`."""

import json

import numpy as np
import pytest
from PIL import Image

import r2unet
from conftest import ROOT, run_cli


def test_predict_matches_the_cli_prob_png(cli, drive, tmp_path):
    path = drive / "test/images/01_test.tif"
    run_cli(cli, "predict", path, "-o", tmp_path)
    png = np.asarray(Image.open(tmp_path / "01_test_prob.png")).astype(np.int64)
    prob = r2unet.load("drive").predict(np.asarray(Image.open(path).convert("RGB")))
    assert prob.shape == png.shape
    levels = np.abs(np.round(prob.astype(np.float64) * 65535) - png)
    assert levels.max() <= 1, levels.max()


def test_metrics_match_eval_report(cli, drive, tmp_path):
    weights = ROOT / "weights/drive-r2unet.safetensors"
    out = run_cli(
        cli, "eval", "--weights", weights, "--dataset", "drive", "--data", drive,
        "--bootstrap", "0", "--tune-on", "none", "--json",
    )
    report = json.loads(out.stdout)
    row = next(r for r in report["fixed"]["per_image"] if r["id"] == "01")
    model = r2unet.load(str(weights))
    image = r2unet.read_image(drive / "test/images/01_test.tif")
    fov = r2unet.read_mask(drive / "test/mask/01_test_mask.gif")
    label = r2unet.read_mask(drive / "test/1st_manual/01_manual1.gif")
    prob = model.predict(image, fov=fov)
    m = r2unet.metrics(prob, label, fov=fov, threshold=0.5)
    want = row["metrics"]
    for k in ["sensitivity", "specificity", "precision", "accuracy", "f1", "jaccard",
              "auc", "average_precision"]:
        assert m[k] == pytest.approx(want[k], abs=1e-9), k
    for k in ["tp", "fp", "tn"]:
        assert m[k] == want["confusion"][k]
    assert m["fn"] == want["confusion"]["fn_"]
