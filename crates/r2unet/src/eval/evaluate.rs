//! Evaluating a trained model on a dataset split: whole-image probability
//! maps (single pass), metrics per image and pooled over all pixels inside the
//! field of view.

use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use super::confusion::{Confusion, Metrics, ZeroDivision};
use super::roc::RocAccumulator;
use crate::data::Sample;
use crate::data::preprocess::resize_image;
use crate::error::Result;
use crate::infer::predict_single_pass;
use crate::model::UNet;
use crate::train::Preprocess;

/// One image's metrics.
#[derive(Debug, Clone, Serialize)]
pub struct ImageMetrics {
    /// Sample id.
    pub id: String,
    /// Metrics inside this image's FOV.
    pub metrics: Metrics,
}

/// Metrics of a model on a set of images.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// How probabilities were produced and where metrics were counted.
    pub protocol: String,
    /// Threshold of the binary metrics.
    pub threshold: f32,
    /// Pooled over every pixel inside the FOV of every image.
    pub pooled: Metrics,
    /// Per image.
    pub per_image: Vec<ImageMetrics>,
    /// Mean wall seconds per image (preprocessing + inference).
    pub seconds_per_image: f64,
}

/// The probability map of a raw sample at its original size.
///
/// # Errors
///
/// Preprocessing errors (an image too small for CLAHE).
pub fn probability_map(
    model: &UNet,
    preprocess: &Preprocess,
    sample: &Sample,
    device: &Device,
) -> Result<Vec<f32>> {
    let input = preprocess.apply(sample)?;
    let probs = predict_single_pass(model, &input.image, device);
    let (w, h) = (sample.image.width, sample.image.height);
    Ok(if (probs.width, probs.height) == (w, h) {
        probs.data
    } else {
        resize_image(&probs, w, h).data
    })
}

/// Evaluates `model` on `samples` (raw, as loaded), single pass per image.
///
/// # Errors
///
/// Preprocessing errors; a NaN probability inside the FOV.
pub fn evaluate(
    model: &UNet,
    preprocess: &Preprocess,
    samples: impl IntoIterator<Item = Result<Sample>>,
    threshold: f32,
    device: &Device,
) -> Result<EvalReport> {
    let mut pooled_roc = RocAccumulator::new();
    let mut pooled = Confusion::default();
    let mut per_image = Vec::new();
    let started = Instant::now();
    for sample in samples {
        let sample = sample?;
        let probs = probability_map(model, preprocess, &sample, device)?;
        let fov = Some(sample.fov.data.as_slice());
        per_image.push(ImageMetrics {
            id: sample.id.clone(),
            metrics: Metrics::evaluate(&probs, &sample.label.data, fov, threshold)?,
        });
        pooled += Confusion::from_probs(&probs, &sample.label.data, fov, threshold);
        pooled_roc.push(&probs, &sample.label.data, fov)?;
    }
    let sorted = pooled_roc.finish();
    let n = per_image.len().max(1);
    Ok(EvalReport {
        protocol: "single pass over the whole image (reflect-padded); metrics inside the FOV"
            .into(),
        threshold,
        pooled: Metrics::new(
            pooled,
            sorted.auc(),
            sorted.average_precision(),
            ZeroDivision::One,
        ),
        per_image,
        seconds_per_image: started.elapsed().as_secs_f64() / n as f64,
    })
}
