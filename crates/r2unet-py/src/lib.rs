//! Python bindings of r2unet: the native module `r2unet._r2unet` behind the
//! `r2unet` package. Everything here converts between numpy arrays and the
//! library's types and calls the library (`r2unet::segment`,
//! `r2unet::eval`, `r2unet::train`); no computing of its own. The GIL is
//! released while the library computes. Bad input raises `ValueError` (or
//! `OSError` for files) naming the array or file and what was expected.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use numpy::ndarray::{Array2, ArrayViewD, Axis};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use r2unet::data::io::{LabelRule, ReadLimits, read_image_checked, read_mask, sixteen_bit_scale};
use r2unet::data::preprocess::window_hu;
use r2unet::data::{DatasetKind, Image, Mask};
use r2unet::device::{Device, DeviceChoice};
use r2unet::eval::confusion::Metrics;
use r2unet::infer::{Inference, Rescale};
use r2unet::kernels::Precision;
use r2unet::model::{Architecture, BnMode, Preset};
use r2unet::onnx::OnnxOutput;
use r2unet::segment::{FovMode, PredictOptions, TrainedModel};
use r2unet::train::{Event, LossKind, Outcome, RunDir, Schedule, TrainConfig, Trainer};

/// A library error as the Python exception a caller expects.
fn py_err(e: r2unet::Error) -> PyErr {
    match e {
        r2unet::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// The dtype of a numpy array as numpy names it (`float64`), for messages.
fn dtype_name(array: &Bound<'_, PyUntypedArray>) -> String {
    array
        .dtype()
        .str()
        .map_or_else(|_| "?".into(), |s| s.to_string())
}

/// `obj` as a numpy array, or a `ValueError` naming `what`.
fn as_array<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().cloned().map_err(|_| {
        let ty = obj
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        value_error(format!("{what}: expected a numpy array, got {ty}"))
    })
}

/// Height, width and channels of an HxW or HxWxC view, checked.
fn layout(shape: &[usize], what: &str) -> PyResult<(usize, usize, usize)> {
    let (h, w, c) = match *shape {
        [h, w] => (h, w, 1),
        [h, w, c] if matches!(c, 1 | 3 | 4) => (h, w, c),
        _ => {
            return Err(value_error(format!(
                "{what}: shape {shape:?}; expected HxW (grey) or HxWxC with C = 1, 3 or 4"
            )));
        }
    };
    if h == 0 || w == 0 {
        return Err(value_error(format!(
            "{what}: shape {shape:?} is empty; expected at least 1x1 pixels"
        )));
    }
    Ok((h, w, c))
}

/// An HxW(xC) view as an image of 1 or 3 channels (alpha dropped), each
/// value mapped by `scale`.
fn view_to_image<T: Copy>(
    view: ArrayViewD<'_, T>,
    what: &str,
    scale: impl Fn(T) -> f32,
) -> PyResult<Image> {
    let (h, w, c) = layout(view.shape(), what)?;
    let view = if view.ndim() == 2 {
        view.insert_axis(Axis(2))
    } else {
        view
    };
    let keep = if c == 4 { 3 } else { c };
    let mut data = Vec::with_capacity(h * w * keep);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..keep {
                data.push(scale(view[[y, x, ch]]));
            }
        }
    }
    Ok(Image::new(w, h, keep, data))
}

/// A numpy image (uint8, uint16 or float32 in [0, 1]; HxW or HxWxC) as the
/// library's image, scaled to [0, 1] as the file readers scale them.
fn image_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Image> {
    let array = as_array(obj, what)?;
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        return view_to_image(a.as_array(), what, |v| f32::from(v) / 255.0);
    }
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, u16>>() {
        let view = a.as_array();
        let full = sixteen_bit_scale(view.iter().copied().max().unwrap_or(0));
        return view_to_image(view, what, |v| f32::from(v) / full);
    }
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        let view = a.as_array();
        if let Some(bad) = view.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(value_error(format!(
                "{what}: float32 values must lie in [0, 1] (found {bad}); \
                 pass uint8 or uint16 arrays as they are, or scale floats to [0, 1]"
            )));
        }
        return view_to_image(view, what, |v| v);
    }
    Err(value_error(format!(
        "{what}: dtype {}; expected uint8, uint16 or float32",
        dtype_name(&array)
    )))
}

/// A CT slice array (HxW Hounsfield units, int16 or finite float32/float64)
/// windowed to `[0, 1]` by `window`, as the CT loader windows training slices.
fn ct_image_of(obj: &Bound<'_, PyAny>, what: &str, window: (f32, f32)) -> PyResult<Image> {
    let (array, h, w) = plane_of(obj, what)?;
    let values: Vec<f32> = if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, i16>>() {
        a.as_array().iter().map(|&v| f32::from(v)).collect()
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        a.as_array().iter().copied().collect()
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        a.as_array().iter().map(|&v| v as f32).collect()
    } else {
        return Err(value_error(format!(
            "{what}: dtype {}; the model was trained on CT slices: expected an HxW array \
             of Hounsfield units, int16, float32 or float64",
            dtype_name(&array)
        )));
    };
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(value_error(format!(
            "{what}: holds {bad}; expected finite Hounsfield units"
        )));
    }
    window_hu(&Image::new(w, h, 1, values), window.0, window.1).map_err(py_err)
}

/// `obj` as a non-empty HxW numpy array, with its height and width.
fn plane_of<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(Bound<'py, PyUntypedArray>, usize, usize)> {
    let array = as_array(obj, what)?;
    let shape = array.shape().to_vec();
    let [h, w] = shape[..] else {
        return Err(value_error(format!(
            "{what}: shape {shape:?}; expected HxW"
        )));
    };
    if h == 0 || w == 0 {
        return Err(value_error(format!("{what}: shape {shape:?} is empty")));
    }
    Ok((array, h, w))
}

/// A 0/1 mask from a bool or integer array of zeros and ones (HxW).
fn mask_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Mask> {
    let (array, h, w) = plane_of(obj, what)?;
    let values: Vec<i64> = if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, bool>>() {
        a.as_array().iter().map(|&v| i64::from(v)).collect()
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        a.as_array().iter().map(|&v| i64::from(v)).collect()
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, i64>>() {
        a.as_array().iter().copied().collect()
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, i32>>() {
        a.as_array().iter().map(|&v| i64::from(v)).collect()
    } else {
        return Err(value_error(format!(
            "{what}: dtype {}; expected bool or an integer array of 0 and 1",
            dtype_name(&array)
        )));
    };
    if let Some(bad) = values.iter().find(|&&v| v != 0 && v != 1) {
        return Err(value_error(format!(
            "{what}: holds {bad}; expected only 0 and 1 (or booleans)"
        )));
    }
    Ok(Mask::new(
        w,
        h,
        values.into_iter().map(|v| v as u8).collect(),
    ))
}

/// A probability map: float32 or float64 HxW, finite, in [0, 1].
fn probabilities_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(usize, usize, Vec<f32>)> {
    let (array, h, w) = plane_of(obj, what)?;
    let values: Vec<f32> = if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        a.as_array().iter().copied().collect()
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        a.as_array().iter().map(|&v| v as f32).collect()
    } else {
        return Err(value_error(format!(
            "{what}: dtype {}; expected float32 or float64 probabilities",
            dtype_name(&array)
        )));
    };
    if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(value_error(format!(
            "{what}: holds {bad}; expected probabilities in [0, 1] (no NaN)"
        )));
    }
    Ok((h, w, values))
}

/// `fov=`: "auto", "none", or a 0/1 array.
fn fov_of(obj: &Bound<'_, PyAny>) -> PyResult<FovMode> {
    if let Ok(s) = obj.extract::<String>() {
        return match s.as_str() {
            "auto" => Ok(FovMode::Auto),
            "none" => Ok(FovMode::Whole),
            other => Err(value_error(format!(
                "fov: `{other}`; expected \"auto\", \"none\" or an HxW array of 0 and 1"
            ))),
        };
    }
    mask_of(obj, "fov").map(FovMode::Mask)
}

fn threshold_ok(threshold: f32) -> PyResult<()> {
    if threshold > 0.0 && threshold < 1.0 {
        Ok(())
    } else {
        Err(value_error(format!(
            "threshold {threshold}: expected a value in (0, 1)"
        )))
    }
}

fn device_of(name: &str) -> PyResult<Device> {
    let choice: DeviceChoice = name
        .parse()
        .map_err(|e: r2unet::Error| value_error(format!("device `{name}`: {e}")))?;
    choice.device().map_err(py_err)
}

/// Row-major `data` as an HxW numpy array.
fn to_numpy<'py, T: numpy::Element>(
    py: Python<'py>,
    h: usize,
    w: usize,
    data: Vec<T>,
) -> Bound<'py, PyArray2<T>> {
    Array2::from_shape_vec((h, w), data)
        .expect("h * w values")
        .into_pyarray(py)
}

/// A trained model: the network and the preprocessing it was trained with.
///
/// Boxed: Burn's types ask for 64-byte alignment, and a Python object's
/// memory only has 16 (pyo3 would abort on the misaligned field).
#[pyclass(module = "r2unet._r2unet", name = "Model", frozen)]
struct PyModel {
    inner: Box<TrainedModel>,
    device: Box<Device>,
}

#[pymethods]
impl PyModel {
    /// Where the model came from (a file path or `shipped weights drive`).
    #[getter]
    fn source(&self) -> String {
        self.inner.source.clone()
    }

    /// The architecture: unet, resunet, runet, r2unet or attr2unet.
    #[getter]
    fn architecture(&self) -> String {
        self.inner.model.config.architecture.to_string()
    }

    /// Input channels of the network (1 for the fundus models).
    #[getter]
    fn in_channels(&self) -> usize {
        self.inner.model.config.in_channels
    }

    /// The preprocessing recorded with the weights, as a dict.
    #[getter]
    fn preprocess<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = serde_json::to_string(&self.inner.preprocess).expect("serialises");
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Trainable parameters.
    #[getter]
    fn parameters(&self) -> usize {
        self.inner.model.num_trainable_params()
    }

    fn __repr__(&self) -> String {
        format!(
            "r2unet.Model({}, {} parameters, from {})",
            self.architecture(),
            self.parameters(),
            self.inner.source
        )
    }

    /// Foreground probabilities (float32, HxW) of an image array.
    #[pyo3(signature = (image, fov = None, tta = false, rescale = true))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        fov: Option<&Bound<'py, PyAny>>,
        tta: bool,
        rescale: bool,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let seg = self.run(py, image, fov, 0.5, inference(tta, rescale))?;
        let (h, w) = (seg.height(), seg.width());
        Ok(to_numpy(py, h, w, seg.probabilities))
    }

    /// The binary mask (uint8 HxW, 0/1) of `probability >= threshold`.
    #[pyo3(signature = (image, threshold = 0.5, fov = None, tta = false, rescale = true))]
    fn segment<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        threshold: f32,
        fov: Option<&Bound<'py, PyAny>>,
        tta: bool,
        rescale: bool,
    ) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let seg = self.run(py, image, fov, threshold, inference(tta, rescale))?;
        let (h, w) = (seg.height(), seg.width());
        Ok(to_numpy(py, h, w, seg.mask))
    }

    /// The network input of an image as the single pass feeds it: float32
    /// [1, C, H', W'], preprocessed and reflect-padded on the right and bottom
    /// to a multiple of 2^(depth-1) (crop outputs back to the image's size).
    fn network_input<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let image = self.image_of(image)?;
        let (values, shape) = py
            .detach(|| self.inner.network_input(image))
            .map_err(py_err)?;
        numpy::PyArray1::from_vec(py, values).call_method1("reshape", (shape.to_vec(),))
    }

    /// The network's logits (eval mode) for a float32 NCHW batch.
    fn forward<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        as_array(x, "x")?;
        let a = x.extract::<PyReadonlyArrayDyn<'_, f32>>().map_err(|_| {
            value_error("x: expected a float32 array of shape [batch, channels, height, width]")
        })?;
        let view = a.as_array();
        let [n, c, h, w] = view.shape()[..] else {
            return Err(value_error(format!(
                "x: shape {:?}; expected [batch, channels, height, width]",
                view.shape()
            )));
        };
        if let Some(bad) = view.iter().find(|v| !v.is_finite()) {
            return Err(value_error(format!(
                "x: holds {bad}; expected finite values"
            )));
        }
        let values: Vec<f32> = view.iter().copied().collect();
        let out_channels = self.inner.model.config.out_channels;
        let logits = py
            .detach(|| self.inner.logits(values, [n, c, h, w], &self.device))
            .map_err(py_err)?;
        numpy::PyArray1::from_vec(py, logits)
            .call_method1("reshape", (vec![n, out_channels, h, w],))
    }

    /// Writes the model as ONNX (opset 17, dynamic batch/height/width, batch
    /// norm folded; logits, or sigmoid probabilities with `probabilities`).
    #[pyo3(signature = (path, probabilities = false))]
    fn export_onnx(&self, py: Python<'_>, path: PathBuf, probabilities: bool) -> PyResult<()> {
        let output = if probabilities {
            OnnxOutput::Probabilities
        } else {
            OnnxOutput::Logits
        };
        py.detach(|| {
            let bytes =
                r2unet::onnx::export(&self.inner.model, Some(&self.inner.preprocess), output)?;
            r2unet::atomic::write_atomic(&path, &bytes)
        })
        .map_err(py_err)
    }

    /// Segments an image file and writes `<stem>_prob.png`, `<stem>_mask.png`
    /// and `<stem>_overlay.png` into `out_dir`, as `r2unet predict` does.
    #[pyo3(signature = (path, out_dir, threshold = 0.5, fov = "auto", rescale = true))]
    fn segment_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        out_dir: PathBuf,
        threshold: f32,
        fov: &str,
        rescale: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        threshold_ok(threshold)?;
        let fov = FovMode::from_arg(fov, ReadLimits::default()).map_err(py_err)?;
        let opts = PredictOptions {
            threshold,
            fov,
            inference: inference(false, rescale),
            ..PredictOptions::default()
        };
        std::fs::create_dir_all(&out_dir).map_err(|e| py_err(r2unet::Error::io(&out_dir, e)))?;
        let done = py
            .detach(|| {
                self.inner
                    .segment_file(&path, &out_dir, &opts, &self.device)
            })
            .map_err(py_err)?;
        let d = PyDict::new(py);
        d.set_item("input", done.input)?;
        d.set_item("prob", &done.outputs[0])?;
        d.set_item("mask", &done.outputs[1])?;
        d.set_item("overlay", &done.outputs[2])?;
        d.set_item("width", done.size.0)?;
        d.set_item("height", done.size.1)?;
        d.set_item("foreground_fraction", done.foreground_fraction)?;
        d.set_item("warnings", done.warnings)?;
        Ok(d)
    }
}

impl PyModel {
    /// The `image=` array as this model's input: Hounsfield units windowed
    /// for a CT model (its window recorded with the weights), else [0, 1]
    /// as the file readers scale images.
    fn image_of(&self, image: &Bound<'_, PyAny>) -> PyResult<Image> {
        match self.inner.preprocess.hu_window() {
            Some(window) => ct_image_of(image, "image", window),
            None => image_of(image, "image"),
        }
    }

    fn run(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        fov: Option<&Bound<'_, PyAny>>,
        threshold: f32,
        inference: Inference,
    ) -> PyResult<r2unet::segment::Segmentation> {
        threshold_ok(threshold)?;
        let image = self.image_of(image)?;
        let fov = match fov {
            Some(f) => fov_of(f)?,
            None => FovMode::Auto,
        };
        py.detach(|| {
            self.inner
                .segment("image", image, &fov, threshold, &inference, &self.device)
        })
        .map_err(py_err)
    }
}

/// The inference settings of `predict`, `segment` and `segment_file`.
fn inference(flip_tta: bool, rescale: bool) -> Inference {
    Inference {
        flip_tta,
        rescale: if rescale {
            Rescale::Auto
        } else {
            Rescale::None
        },
        ..Inference::default()
    }
}

/// Loads a model: a shipped name (`"drive"`) or a weights file.
#[pyfunction]
#[pyo3(signature = (model = "drive", device = "cpu"))]
fn load(py: Python<'_>, model: &str, device: &str) -> PyResult<PyModel> {
    let device = device_of(device)?;
    let inner = py
        .detach(|| TrainedModel::open(model, &device))
        .map_err(py_err)?;
    Ok(PyModel {
        inner: Box::new(inner),
        device: Box::new(device),
    })
}

/// Sets the arithmetic of the 3x3 convolutions of inference in this process:
/// `"f32"` (the default) or `"bf16"` (inputs and weights rounded to bfloat16,
/// f32 sums; CPUs with AVX512_BF16, on AMX tiles where they have them).
#[pyfunction]
fn set_precision(precision: &str) -> PyResult<()> {
    r2unet::kernels::set_precision(precision_of(precision)?).map_err(py_err)
}

fn precision_of(name: &str) -> PyResult<Precision> {
    match name {
        "f32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        other => Err(value_error(format!(
            "precision {other:?}: expected \"f32\" or \"bf16\""
        ))),
    }
}

/// The arithmetic `set_precision` chose: `"f32"` or `"bf16"`.
#[pyfunction]
fn precision() -> &'static str {
    match r2unet::kernels::precision() {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
    }
}

/// The names of the shipped models.
#[pyfunction]
fn shipped_models() -> Vec<&'static str> {
    r2unet::segment::SHIPPED.iter().map(|(n, _)| *n).collect()
}

/// An image file as r2unet reads it: float32 in [0, 1], HxW or HxWx3.
#[pyfunction]
fn read_image_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let (image, warnings) = py
        .detach(|| read_image_checked(&path, ReadLimits::default()))
        .map_err(py_err)?;
    for warning in warnings {
        py.import("warnings")?.call_method1("warn", (warning,))?;
    }
    let (h, w, c) = (image.height, image.width, image.channels);
    let flat = numpy::PyArray1::from_vec(py, image.data);
    let shape: Vec<usize> = if c == 1 { vec![h, w] } else { vec![h, w, c] };
    flat.call_method1("reshape", (shape,))
}

/// A label or mask file as r2unet reads it: uint8 0/1, HxW.
#[pyfunction]
fn read_mask_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyArray2<u8>>> {
    let mask = py
        .detach(|| read_mask(&path, ReadLimits::default(), LabelRule::Binary))
        .map_err(py_err)?;
    Ok(to_numpy(py, mask.height, mask.width, mask.data))
}

/// The paper's metrics of a probability map against a 0/1 label inside an
/// optional field of view, as `r2unet eval` computes them per image.
#[pyfunction]
#[pyo3(signature = (prob, label, fov = None, threshold = 0.5))]
fn metrics<'py>(
    py: Python<'py>,
    prob: &Bound<'py, PyAny>,
    label: &Bound<'py, PyAny>,
    fov: Option<&Bound<'py, PyAny>>,
    threshold: f32,
) -> PyResult<Bound<'py, PyDict>> {
    threshold_ok(threshold)?;
    let (h, w, probs) = probabilities_of(prob, "prob")?;
    let label = mask_of(label, "label")?;
    let fov = fov.map(|f| mask_of(f, "fov")).transpose()?;
    for (name, m) in std::iter::once(("label", &label)).chain(fov.as_ref().map(|f| ("fov", f))) {
        if (m.height, m.width) != (h, w) {
            return Err(value_error(format!(
                "{name}: shape ({}, {}); expected the shape of prob, ({h}, {w})",
                m.height, m.width
            )));
        }
    }
    if let Some(f) = &fov
        && f.data.iter().all(|&v| v == 0)
    {
        return Err(value_error(
            "fov: holds no 1; expected at least one pixel inside the field of view \
             (no metric is defined over none)",
        ));
    }
    let m: Metrics = py
        .detach(|| {
            Metrics::evaluate(
                &probs,
                &label.data,
                fov.as_ref().map(|f| f.data.as_slice()),
                threshold,
            )
        })
        .map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("threshold", threshold)?;
    d.set_item("sensitivity", m.sensitivity)?;
    d.set_item("specificity", m.specificity)?;
    d.set_item("precision", m.precision)?;
    d.set_item("accuracy", m.accuracy)?;
    d.set_item("f1", m.f1)?;
    d.set_item("dice", m.f1)?;
    d.set_item("jaccard", m.jaccard)?;
    d.set_item("auc", m.auc)?;
    d.set_item("average_precision", m.average_precision)?;
    d.set_item("tp", m.confusion.tp)?;
    d.set_item("fp", m.confusion.fp)?;
    d.set_item("tn", m.confusion.tn)?;
    d.set_item("fn", m.confusion.fn_)?;
    Ok(d)
}

/// Trains a model into a run folder (see `r2unet train --help`); progress
/// goes to the `r2unet` logger. Returns the run's final state as a dict.
#[pyfunction]
#[pyo3(signature = (
    out, dataset = "synthetic", data = None, model = "r2unet", epochs = None,
    patches_per_image = None, patch_size = None, batch_size = None, lr = 1e-3,
    schedule = "cosine", loss = "bce", pos_weight = None, seed = 0,
    synthetic_images = 20, augment = true, val_fraction = 0.1, bn = "per-step",
    widths = None, t = None, init = None, protocol = None, checkpoint_minutes = 10.0, resume = false,
    device = "cpu", precision = "f32",
))]
#[allow(clippy::too_many_arguments)]
fn train<'py>(
    py: Python<'py>,
    out: PathBuf,
    dataset: &str,
    data: Option<PathBuf>,
    model: &str,
    epochs: Option<usize>,
    patches_per_image: Option<usize>,
    patch_size: Option<usize>,
    batch_size: Option<usize>,
    lr: f64,
    schedule: &str,
    loss: &str,
    pos_weight: Option<f64>,
    seed: u64,
    synthetic_images: usize,
    augment: bool,
    val_fraction: f32,
    bn: &str,
    widths: Option<Vec<usize>>,
    t: Option<usize>,
    init: Option<PathBuf>,
    protocol: Option<&str>,
    checkpoint_minutes: f64,
    resume: bool,
    device: &str,
    precision: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let device = device_of(device)?;
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("r2unet",))?
        .unbind();
    let run = RunDir(out.clone());
    let trainer = if resume {
        Trainer::resume(run, &device).map_err(py_err)?
    } else {
        let synthetic = dataset == "synthetic";
        let kind: DatasetKind = if synthetic {
            DatasetKind::Drive
        } else {
            dataset.parse().map_err(py_err)?
        };
        let architecture: Architecture = model.parse().map_err(py_err)?;
        let source = match (synthetic, data) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(value_error(
                    "data: the synthetic set is generated, not read: leave data unset",
                ));
            }
            (false, Some(d)) => Some((kind, d)),
            (false, None) => {
                return Err(value_error(format!(
                    "data: dataset `{dataset}` needs the path of its folder"
                )));
            }
        };
        let mut model_config = Preset::Retina.config(architecture);
        model_config.bn = bn.parse::<BnMode>().map_err(py_err)?;
        if let Some(t) = t {
            model_config.t = t;
        }
        if let Some(widths) = widths {
            model_config.widths = widths;
        }
        let mut config = TrainConfig::new(source, model_config);
        if let Some(size) = patch_size {
            config = config.with_patch_size(size);
        }
        if let Some(weights) = &init {
            config = config.with_init(weights.clone()).map_err(py_err)?;
        }
        match protocol {
            None => {}
            Some("paper") => {
                if epochs.or(patches_per_image).or(batch_size).is_some() {
                    return Err(value_error(
                        "protocol=\"paper\" fixes the budget (50 epochs of 9,500 patches per \
                         image, batch 32): leave epochs, patches_per_image and batch_size unset",
                    ));
                }
                config = config.with_paper_budget();
            }
            Some(other) => {
                return Err(value_error(format!(
                    "protocol `{other}`: expected \"paper\" or None"
                )));
            }
        }
        config.epochs = epochs.unwrap_or(config.epochs);
        config.patches_per_image = patches_per_image.unwrap_or(config.patches_per_image);
        config.batch_size = batch_size.unwrap_or(config.batch_size);
        config.synthetic_images = synthetic_images;
        config.lr = lr;
        config.schedule = match schedule {
            "cosine" => Schedule::Cosine,
            "constant" => Schedule::Constant,
            "one-cycle" => Schedule::OneCycle,
            other => {
                return Err(value_error(format!(
                    "schedule `{other}`: expected \"cosine\", \"one-cycle\" or \"constant\""
                )));
            }
        };
        config.loss = match loss {
            "bce" => LossKind::Bce,
            "dice" => LossKind::Dice,
            "bce-dice" => LossKind::BceDice,
            other => {
                return Err(value_error(format!(
                    "loss `{other}`: expected \"bce\", \"dice\" or \"bce-dice\""
                )));
            }
        };
        config.pos_weight = pos_weight;
        config.seed = seed;
        config.augment = augment;
        config.val_fraction = val_fraction;
        config.checkpoint_minutes = checkpoint_minutes;
        config.precision = precision_of(precision)?;
        Trainer::new(config, run, &device).map_err(py_err)?
    };
    let stop = AtomicBool::new(false);
    let outcome = py.detach(|| {
        let mut on_event = |event: Event| {
            let line = match event {
                Event::Ready { train, val, .. } => {
                    Some(format!("training on {train} patches, validating on {val}"))
                }
                Event::Epoch(r) => Some(format!(
                    "epoch {} done: train loss {:.4}, val AUC {}, {:.1} patches/s, {:.0} s",
                    r.epoch,
                    r.train_loss,
                    r.val_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
                    r.patches_per_s,
                    r.elapsed_s
                )),
                Event::Step { .. } => None,
                Event::Interrupted => Some("interrupted: checkpoint written".into()),
            };
            Python::attach(|py| {
                if let Some(line) = line {
                    // A failing logging handler must not stop the training.
                    let _ = logger.bind(py).call_method1("info", (line,));
                }
                if py.check_signals().is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        };
        trainer.run(&stop, &mut on_event)
    });
    match outcome.map_err(py_err)? {
        Outcome::Finished(state) => {
            let json = serde_json::to_string(&state).expect("serialises");
            py.import("json")?.call_method1("loads", (json,))
        }
        Outcome::Interrupted(_) => Err(PyKeyboardInterrupt::new_err(format!(
            "interrupted; a checkpoint was written: resume with r2unet.train({:?}, resume=True)",
            out.display().to_string()
        ))),
    }
}

/// Where `path` would be written by `segment_file` for an input (the output stem).
#[pyfunction]
fn output_stem(path: PathBuf) -> String {
    r2unet::segment::output_stem(Path::new(&path))
}

#[pymodule]
fn _r2unet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(shipped_models, m)?)?;
    m.add_function(wrap_pyfunction!(read_image_file, m)?)?;
    m.add_function(wrap_pyfunction!(read_mask_file, m)?)?;
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(output_stem, m)?)?;
    m.add_function(wrap_pyfunction!(set_precision, m)?)?;
    m.add_function(wrap_pyfunction!(precision, m)?)?;
    Ok(())
}
