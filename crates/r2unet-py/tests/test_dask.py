"""Batch segmentation on a local Dask cluster of 2 worker processes: every
output file equals the CLI's."""

import filecmp

import pytest
from PIL import Image

from conftest import fundus, run_cli

distributed = pytest.importorskip("dask.distributed")


def test_segment_files_on_two_workers_equals_the_cli(cli, tmp_path):
    from r2unet.dask import segment_files

    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = []
    for i in range(8):
        p = inputs / f"eye{i}.png"
        Image.fromarray(fundus(80 + 8 * i, 96, 10 + i)).save(p)
        paths.append(p)
    (inputs / "broken.png").write_bytes(b"not a picture")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        rows = segment_files(client, paths + [inputs / "broken.png"], tmp_path / "dask")
    assert [r["ok"] for r in rows] == [True] * 8 + [False]
    assert "broken.png" in rows[-1]["error"]
    run_cli(cli, "predict", *paths, "-o", tmp_path / "cli")
    for p in paths:
        for kind in ["prob", "mask", "overlay"]:
            name = f"{p.stem}_{kind}.png"
            assert filecmp.cmp(tmp_path / "dask" / name, tmp_path / "cli" / name, shallow=False), name
    assert rows[0]["width"] == 96 and rows[0]["height"] == 80


def test_clashing_output_names_are_refused(tmp_path):
    from r2unet.dask import segment_files

    with pytest.raises(ValueError, match="rename one"):
        segment_files(None, [tmp_path / "a/x.png", tmp_path / "b/x.jpg"], tmp_path / "o")
