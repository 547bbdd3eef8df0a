//! Numerical parity with the PyTorch reference on any device: a fixture folder
//! written by `../shared/reference/r2unet_torch.py export` (a model's config in
//! `meta.json`, its weights, an input batch, and PyTorch's eval-mode and
//! train-mode logits, loss and every tensor after one Adam step) is replayed
//! here and the largest differences are reported.
//!
//! The integration tests run it on the CPU for every model (tolerance 1e-4);
//! `r2unet parity --device D` runs the same check on a GPU, which is how a new
//! machine or backend is trusted before training on it.

use std::path::{Path, PathBuf};

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::tensor_values;
use crate::model::{Architecture, BnMode, Preset, UNetConfig, load_weights};
use crate::train::loss::bce_with_logits;

/// The tolerance the integration tests hold every difference to.
pub const TOLERANCE: f32 = 1e-4;

/// Largest absolute differences from PyTorch for one fixture.
#[derive(Clone, Debug, Serialize)]
pub struct ParityReport {
    /// The fixture folder's name (`r2unet`, `unet_per_step`, ...).
    pub fixture: String,
    /// Eval-mode logits (running statistics).
    pub eval_logits: f32,
    /// Train-mode logits (batch statistics).
    pub train_logits: f32,
    /// The BCE-with-logits loss.
    pub loss: f32,
    /// Every parameter and running statistic after one Adam step, except the
    /// biases that feed a batch norm (see [`bias_cancelled_by_batch_norm`]).
    pub after_step: f32,
    /// How many tensors `after_step` covers.
    pub tensors_compared: usize,
    /// The largest move of a bias that feeds a batch norm (at most lr = 1e-3).
    pub cancelled_bias_moved: f32,
}

impl ParityReport {
    /// The largest of the compared differences.
    pub fn max_diff(&self) -> f32 {
        self.eval_logits
            .max(self.train_logits)
            .max(self.loss)
            .max(self.after_step)
    }

    /// Whether every difference is within `tolerance` and the cancelled biases
    /// moved by at most the learning rate.
    pub fn passes(&self, tolerance: f32) -> bool {
        self.max_diff() < tolerance && self.cancelled_bias_moved <= 1e-3 + 1e-6
    }
}

/// Replays the fixture in `dir` on `device` (the train-mode half on its
/// autodiff twin) and measures the differences from PyTorch.
///
/// # Errors
///
/// A missing or malformed `meta.json`, weights or tensor file.
pub fn check_fixture(dir: &Path, device: &Device) -> Result<ParityReport> {
    let config = config_of(dir)?;
    let (io, after_path) = (
        dir.join("io.safetensors"),
        dir.join("after_step.safetensors"),
    );
    let weights = dir.join("weights.safetensors");

    let model = load_weights(&config, &weights, device)?;
    let eval = values(model.forward(tensor(&io, "input", device)?));
    let eval_logits = max_abs_diff(&eval, &read_f32(&io, "eval_logits")?.1);

    let ad = device.clone().autodiff();
    let model = load_weights(&config, &weights, &ad)?;
    let logits = model.forward(tensor(&io, "input", &ad)?);
    let train_logits = max_abs_diff(
        &values(logits.clone().detach()),
        &read_f32(&io, "train_logits")?.1,
    );
    let loss = bce_with_logits(logits, tensor(&io, "target", &ad)?, None);
    let loss_value: f32 = loss.clone().into_scalar();
    let loss_diff = (loss_value - read_f32(&io, "loss")?.1[0]).abs();

    let before = model.state_dict();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let after = optim.step(1e-3, model, grads).state_dict();

    let (mut after_step, mut compared, mut moved) = (0.0f32, 0, 0.0f32);
    for (t, t0) in after.iter().zip(&before) {
        let (shape, expected) = read_f32(&after_path, &t.name)?;
        if shape != t.shape {
            return Err(Error::Layout {
                path: after_path,
                reason: format!(
                    "expected `{}` of shape {:?}, found {shape:?}",
                    t.name, t.shape
                ),
            });
        }
        if bias_cancelled_by_batch_norm(&t.name) {
            moved = moved.max(max_abs_diff(&t.values, &t0.values));
        } else {
            after_step = after_step.max(max_abs_diff(&t.values, &expected));
            compared += 1;
        }
    }
    Ok(ParityReport {
        fixture: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        eval_logits,
        train_logits,
        loss: loss_diff,
        after_step,
        tensors_compared: compared,
        cancelled_bias_moved: moved,
    })
}

/// The fixture folders under `root` (each holding a `meta.json`), sorted.
///
/// # Errors
///
/// `root` cannot be listed or holds no fixture.
pub fn fixtures_in(root: &Path) -> Result<Vec<PathBuf>> {
    let io = |e| Error::Io {
        path: root.to_path_buf(),
        source: e,
    };
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.join("meta.json").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    if dirs.is_empty() {
        return Err(Error::Layout {
            path: root.to_path_buf(),
            reason: "expected folders with a meta.json (PyTorch parity fixtures)".into(),
        });
    }
    Ok(dirs)
}

/// A conv bias that feeds straight into a BatchNorm has a zero gradient in exact
/// arithmetic (the mean subtraction cancels it); both frameworks see only rounding
/// noise there, which Adam's first step (`lr * g / (|g| + eps)`) amplifies to
/// anything in [-lr, lr]. Those tensors are only checked to move by at most lr.
pub fn bias_cancelled_by_batch_norm(name: &str) -> bool {
    let before_bn = name.ends_with(".0.bias") && !name.contains("step_bn");
    let per_step_conv = name.ends_with(".conv.bias");
    before_bn || per_step_conv
}

fn config_of(dir: &Path) -> Result<UNetConfig> {
    let path = dir.join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    let bad = |what: &str| Error::Config {
        path: path.clone(),
        reason: format!("expected {what}"),
    };
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("JSON"))?;
    let text_of = |key: &str| meta[key].as_str().ok_or_else(|| bad(key));
    let number = |key: &str| {
        meta[key]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| bad(key))
    };
    let arch: Architecture = text_of("model")?.parse().map_err(|_| bad("a model name"))?;
    let widths = text_of("widths")?
        .split(',')
        .map(|w| w.trim().parse().map_err(|_| bad("widths like 4,8,16")))
        .collect::<Result<Vec<usize>>>()?;
    let bn = match meta["per_step_bn"].as_bool() {
        Some(true) => BnMode::PerStep,
        Some(false) => BnMode::Shared,
        None => return Err(bad("per_step_bn")),
    };
    Ok(Preset::Retina
        .config(arch)
        .with_widths(widths)
        .with_t(number("t")?)
        .with_bn(bn)
        .with_in_channels(number("in_ch")?)
        .with_out_channels(number("out_ch")?)
        .with_patch_size(number("size")?))
}

/// Shape and values (as `f32`) of the tensor `name` of a safetensors file.
///
/// # Errors
///
/// The file cannot be read or parsed, lacks the tensor, or holds it in a
/// dtype other than `f32`/`f64`.
pub fn read_f32(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let view = file.tensor(name).map_err(|_| Error::MissingTensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
    })?;
    tensor_values(&view, name, path)
}

fn tensor(path: &Path, name: &str, device: &Device) -> Result<Tensor<4>> {
    let (shape, values) = read_f32(path, name)?;
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

/// The largest element-wise difference; infinite when the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
