"""Type stubs of the native module behind the ``r2unet`` package."""

import os
from typing import Any, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

_Image = Union[
    npt.NDArray[np.uint8], npt.NDArray[np.uint16], npt.NDArray[np.float32]
]
_Fov = Union[Literal["auto", "none"], npt.NDArray[np.bool_], npt.NDArray[np.uint8]]
_Path = Union[str, os.PathLike[str]]

class Model:
    """A trained model: the network and the preprocessing it was trained with."""

    @property
    def source(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def parameters(self) -> int: ...
    @property
    def preprocess(self) -> dict[str, Any]: ...
    def predict(
        self,
        image: _Image,
        fov: Optional[_Fov] = None,
        tta: bool = False,
        rescale: bool = True,
    ) -> npt.NDArray[np.float32]:
        """Foreground probabilities, float32 HxW, 0 outside the field of view.

        ``image``: HxW or HxWxC (C = 1, 3 or 4; alpha ignored) of uint8,
        uint16 (divided by the smallest of 2^8, 2^10, 2^12, 2^14 or 2^16,
        minus one, that holds its largest value) or float32 in [0, 1]; for a
        CT model (``preprocess["hu_window"]`` recorded), HxW Hounsfield units
        (int16, float32 or float64), windowed as its training slices were. ``fov``: "auto" (computed for fundus
        models, whole image otherwise; the default), "none", or an HxW 0/1
        mask. ``tta``: average over the four flips. ``rescale``: fundus
        models bring the image to their training images' FOV diameter first
        and the map back to the image's size. Raises ValueError for a
        bad array (dtype, shape, NaN, empty, out of range).
        """
    def segment(
        self,
        image: _Image,
        threshold: float = 0.5,
        fov: Optional[_Fov] = None,
        tta: bool = False,
        rescale: bool = True,
    ) -> npt.NDArray[np.uint8]:
        """The mask ``predict(image) >= threshold`` as uint8 HxW, 0/1."""
    def network_input(self, image: _Image) -> npt.NDArray[np.float32]:
        """The [1, C, H', W'] float32 array r2unet's single pass feeds the
        network: preprocessed, reflect-padded to a multiple of 2^(depth-1)."""
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The network's logits for a float32 NCHW batch (height and width
        multiples of 2^(depth-1))."""
    def export_onnx(self, path: _Path, probabilities: bool = False) -> None:
        """Writes the model as ONNX (opset 17; dynamic batch, height, width)."""
    def segment_file(
        self,
        path: _Path,
        out_dir: _Path,
        threshold: float = 0.5,
        fov: str = "auto",
        rescale: bool = True,
    ) -> dict[str, Any]:
        """Writes ``<stem>_{prob,mask,overlay}.png`` into ``out_dir`` as
        ``r2unet predict`` does; returns the paths, size and foreground
        fraction. ``fov``: "auto", "none" or a mask file path."""

def load(model: str = "drive", device: str = "cpu") -> Model:
    """A shipped model by name (``"drive"``) or a weights file path."""

def shipped_models() -> list[str]:
    """Names accepted by ``load`` without a file."""

def read_image_file(path: _Path) -> npt.NDArray[np.float32]:
    """An image file as r2unet reads it: float32 in [0, 1], HxW or HxWx3."""

def read_mask_file(path: _Path) -> npt.NDArray[np.uint8]:
    """A label or mask file as r2unet reads it: uint8 0/1, HxW."""

def metrics(
    prob: npt.NDArray[np.floating[Any]],
    label: npt.NDArray[Any],
    fov: Optional[npt.NDArray[Any]] = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Sensitivity, specificity, precision, accuracy, f1 (= dice), jaccard,
    auc, average_precision and tp/fp/tn/fn inside ``fov``, as ``r2unet eval``
    reports them per image."""

def train(
    out: _Path,
    dataset: str = "synthetic",
    data: Optional[_Path] = None,
    model: str = "r2unet",
    epochs: Optional[int] = None,
    patches_per_image: Optional[int] = None,
    patch_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: float = 1e-3,
    schedule: Literal["cosine", "one-cycle", "constant"] = "cosine",
    loss: Literal["bce", "dice", "bce-dice"] = "bce",
    pos_weight: Optional[float] = None,
    seed: int = 0,
    synthetic_images: int = 20,
    augment: bool = True,
    val_fraction: float = 0.1,
    bn: Literal["shared", "per-step"] = "per-step",
    widths: Optional[list[int]] = None,
    t: Optional[int] = None,
    init: Optional[_Path] = None,
    protocol: Optional[Literal["paper"]] = None,
    checkpoint_minutes: float = 10.0,
    resume: bool = False,
    device: str = "cpu",
    precision: Literal["f32", "bf16"] = "f32",
) -> dict[str, Any]:
    """Trains into the run folder ``out`` with ``r2unet train``'s options
    (defaults: the retina preset's R2U-Net, widths 16-128, t = 2; 10 epochs,
    600 patches per image, batch 32, 48x48 patches for fundus sets and 256
    for whole images; ``protocol="paper"`` fixes 50 x 9,500 x 32 and refuses
    explicit ones; ``init`` fine-tunes from weights, whose model replaces
    ``model``, ``bn``, ``widths`` and ``t``);
    ``resume=True`` continues the run. ``precision="bf16"`` as ``r2unet
    train --precision bf16``; the run uses its own precision whatever
    ``set_precision`` chose, and restores it after (the setting is
    process-wide: inference in other threads meanwhile runs in the run's
    precision). Progress goes to the ``r2unet``
    logger; returns the final run state. Ctrl-C writes a checkpoint and
    raises KeyboardInterrupt."""

def output_stem(path: _Path) -> str:
    """The stem of the files ``segment_file`` writes for ``path``."""

def set_precision(precision: Literal["f32", "bf16"]) -> None:
    """Arithmetic of the 3x3 convolutions of inference in this process:
    ``"f32"`` (default) or ``"bf16"`` (bfloat16 products, f32 sums; CPUs
    with AVX512_BF16, on AMX tiles where present). ValueError where the CPU
    cannot. ``train`` runs in its own ``precision`` and restores this one."""

def precision() -> Literal["f32", "bf16"]:
    """The arithmetic ``set_precision`` chose."""
