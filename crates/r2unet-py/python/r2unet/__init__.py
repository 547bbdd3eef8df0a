"""r2unet: R2U-Net and its U-Net family for medical image segmentation.

The models, preprocessing, inference and metrics are r2unet's Rust library
(the same code as the ``r2unet`` command-line program); this package hands
numpy arrays to it and back. Computation releases the GIL.

>>> import r2unet
>>> model = r2unet.load("drive")            # the shipped DRIVE R2U-Net
>>> prob = model.predict(rgb_uint8_array)    # float32 HxW in [0, 1]
>>> mask = model.segment(rgb_uint8_array, threshold=0.5)   # uint8 HxW, 0/1
>>> r2unet.metrics(prob, label, fov=fov)["f1"]

Batch segmentation of files on a Dask cluster: :mod:`r2unet.dask`.
"""

from ._r2unet import (
    Model,
    load,
    metrics,
    output_stem,
    precision,
    read_image_file as read_image,
    read_mask_file as read_mask,
    set_precision,
    shipped_models,
    train,
)

__all__ = [
    "Model",
    "load",
    "metrics",
    "output_stem",
    "precision",
    "read_image",
    "read_mask",
    "set_precision",
    "shipped_models",
    "train",
]
__version__ = "0.1.0"
