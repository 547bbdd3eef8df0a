//! Evaluating a trained model on a dataset split: whole-image probability
//! maps, metrics per image and pooled over all pixels inside the field of
//! view, at a fixed threshold and at one tuned on other images, with
//! bootstrap confidence intervals over images.

use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::bootstrap::{MetricIntervals, ScoreHistogram, metric_intervals};
use super::confusion::{Confusion, Metrics, ZeroDivision};
use super::roc::{PrPoint, RocAccumulator, RocPoint, thin_curve};
use crate::data::fov::fov_diameter;
use crate::data::preprocess::{resize_image, resize_mask};
use crate::data::{ReadLimits, Sample};
use crate::error::{Error, Result};
use crate::infer::{Inference, Rescale};
use crate::model::Preprocess;
use crate::model::UNet;
use crate::threads::map_in_threads;

/// Points kept of the ROC and PR curves in a report.
pub const CURVE_POINTS: usize = 400;

/// One image's metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageMetrics {
    /// Sample id.
    pub id: String,
    /// Metrics inside this image's FOV.
    pub metrics: Metrics,
}

/// A threshold chosen on images other than the evaluated ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TunedThreshold {
    /// The F1-optimal threshold.
    pub threshold: f32,
    /// Which images it was chosen on (e.g. `drive train (20 images)`).
    pub chosen_on: String,
    /// The pooled F1 it reached there.
    pub f1: f64,
}

/// The binary metrics at one threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AtThreshold {
    /// The threshold (`prob >= threshold` is foreground).
    pub threshold: f32,
    /// `fixed` or where it was tuned.
    pub chosen_on: String,
    /// Pooled over every pixel inside the FOV of every image.
    pub pooled: Metrics,
    /// Bootstrap intervals of the pooled metrics over images.
    pub ci: Option<MetricIntervals>,
    /// Per image.
    pub per_image: Vec<ImageMetrics>,
}

/// Metrics of a model on a set of images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// How probabilities were produced and where metrics were counted.
    pub protocol: String,
    /// The inference settings.
    pub inference: Inference,
    /// Number of images.
    pub images: usize,
    /// At the fixed threshold (0.5 by default).
    pub fixed: AtThreshold,
    /// At the F1-optimal threshold chosen on other images, when asked for.
    pub tuned: Option<AtThreshold>,
    /// Pooled ROC curve, thinned to [`CURVE_POINTS`].
    pub roc: Vec<RocPoint>,
    /// Pooled precision-recall curve, thinned.
    pub pr: Vec<PrPoint>,
    /// Mean wall seconds per image (preprocessing + inference).
    pub seconds_per_image: f64,
    /// Each image's score histogram, for paired comparisons with another
    /// model on the same images (not serialised).
    #[serde(skip)]
    pub histograms: Vec<ScoreHistogram>,
}

/// Settings of [`evaluate`].
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// How probability maps are produced.
    pub inference: Inference,
    /// The fixed threshold.
    pub threshold: f32,
    /// A tuned threshold to report as well.
    pub tuned: Option<TunedThreshold>,
    /// Bootstrap resamples over images (0: no intervals).
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Images segmented at once, each in its own thread (sharing the model)
    /// (1: one after another). On the 2-core CPU two concurrent 576x576
    /// forwards take 22% less time than two in a row (BENCHMARKS.md).
    pub concurrent_images: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            inference: Inference::default(),
            threshold: 0.5,
            tuned: None,
            resamples: 1000,
            seed: 0,
            concurrent_images: 2,
        }
    }
}

impl EvalOptions {
    /// Checks every setting's range.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the setting: a threshold outside (0, 1),
    /// zero concurrent images.
    pub fn validate(&self) -> Result<()> {
        for (what, t) in std::iter::once(("threshold", self.threshold)).chain(
            self.tuned
                .as_ref()
                .map(|t| ("tuned threshold", t.threshold)),
        ) {
            if !(t > 0.0 && t < 1.0) {
                return Err(Error::invalid(
                    what,
                    format!("{t}: expected a value in (0, 1)"),
                ));
            }
        }
        if self.concurrent_images == 0 {
            return Err(Error::invalid("concurrent images", "must be at least 1"));
        }
        Ok(())
    }
}

/// The probability map of a raw sample at its original size.
///
/// # Errors
///
/// Preprocessing errors (an image too small for CLAHE), a channel mismatch.
pub fn probability_map(
    model: &UNet,
    preprocess: &Preprocess,
    inference: &Inference,
    sample: &Sample,
    device: &Device,
) -> Result<Vec<f32>> {
    // The size is checked as given: a tiny image is refused, not enlarged.
    preprocess.check_size(sample)?;
    let input = match rescale_factor(preprocess, inference, sample) {
        Some(scale) if rescaled_pixels(sample, scale) > ReadLimits::default().max_pixels => {
            return Err(Error::invalid(
                format!("image `{}`", sample.id),
                format!(
                    "its field of view is {} pixels across, {scale:.1} times smaller than the \
                     model's training images': enlarged to match, it would have {} pixels, \
                     more than the default read limit of {}; give a field-of-view mask that \
                     covers the fundus, or turn rescaling off",
                    fov_diameter(&sample.fov),
                    rescaled_pixels(sample, scale),
                    ReadLimits::default().max_pixels
                ),
            ));
        }
        Some(scale) => preprocess.apply(&rescaled(sample, scale))?,
        None => preprocess.apply(sample)?,
    };
    let probs = inference
        .predict(model, &input.image, device)
        .map_err(|e| Error::invalid(format!("image `{}`", sample.id), e.to_string()))?;
    let (w, h) = (sample.image.width, sample.image.height);
    Ok(if (probs.width, probs.height) == (w, h) {
        probs.data
    } else {
        resize_image(&probs, w, h).data
    })
}

/// The factor `sample` is resized by before segmenting, if any.
fn rescale_factor(preprocess: &Preprocess, inference: &Inference, sample: &Sample) -> Option<f64> {
    match inference.rescale {
        Rescale::Auto => preprocess.fov_scale(&sample.fov),
        Rescale::None => None,
    }
}

/// The side of `n` pixels resized by `scale`, at least 8.
fn rescaled_side(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(8)
}

/// The pixels of `sample` resized by `scale`. A field of view far smaller
/// than the training images' (a stray bright blob, a wrong mask) would
/// enlarge the image past what any reader accepts.
fn rescaled_pixels(sample: &Sample, scale: f64) -> u64 {
    let side = |n| rescaled_side(n, scale) as u64;
    side(sample.image.width) * side(sample.image.height)
}

/// `sample` resized by `scale` (image bilinear, label and FOV nearest),
/// at least 8x8 pixels.
fn rescaled(sample: &Sample, scale: f64) -> Sample {
    let side = |n| rescaled_side(n, scale);
    let (w, h) = (side(sample.image.width), side(sample.image.height));
    Sample {
        image: resize_image(&sample.image, w, h),
        label: resize_mask(&sample.label, w, h),
        fov: resize_mask(&sample.fov, w, h),
        id: sample.id.clone(),
        fov_source: sample.fov_source,
    }
}

/// [`probability_map`] of each of `samples`, each in its own thread.
fn probability_maps(
    model: &UNet,
    preprocess: &Preprocess,
    inference: &Inference,
    samples: &[Sample],
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    map_in_threads(samples.iter().collect(), |sample| {
        probability_map(model, preprocess, inference, sample, device)
    })
    .into_iter()
    .collect()
}

/// The F1-optimal threshold of `model` pooled over `samples` (never the
/// test images: pass training or validation images), described as `chosen_on`.
///
/// # Errors
///
/// Loading and inference errors; [`Error::Invalid`] if the images hold no foreground.
pub fn tune_threshold(
    model: &UNet,
    preprocess: &Preprocess,
    inference: &Inference,
    samples: impl IntoIterator<Item = Result<Sample>>,
    chosen_on: &str,
    device: &Device,
) -> Result<TunedThreshold> {
    let mut scores = RocAccumulator::new();
    for sample in samples {
        let sample = sample?;
        let probs = probability_map(model, preprocess, inference, &sample, device)?;
        scores.push(&probs, &sample.label.data, Some(&sample.fov.data))?;
    }
    let (threshold, f1) = scores.finish().f1_optimal_threshold().ok_or_else(|| {
        Error::invalid(
            chosen_on,
            "no foreground pixels to tune a threshold on".to_string(),
        )
    })?;
    Ok(TunedThreshold {
        threshold,
        chosen_on: chosen_on.to_string(),
        f1,
    })
}

/// Counts of one threshold as images arrive.
struct ThresholdCounts {
    threshold: f32,
    chosen_on: String,
    confusions: Vec<Confusion>,
    per_image: Vec<ImageMetrics>,
}

impl ThresholdCounts {
    fn new(threshold: f32, chosen_on: String) -> Self {
        Self {
            threshold,
            chosen_on,
            confusions: vec![],
            per_image: vec![],
        }
    }

    fn push(&mut self, sample: &Sample, probs: &[f32], auc: Option<f64>, ap: Option<f64>) {
        let fov = Some(sample.fov.data.as_slice());
        let c = Confusion::from_probs(probs, &sample.label.data, fov, self.threshold);
        self.confusions.push(c);
        self.per_image.push(ImageMetrics {
            id: sample.id.clone(),
            metrics: Metrics::new(c, auc, ap, ZeroDivision::One),
        });
    }

    fn finish(
        self,
        hists: &[ScoreHistogram],
        opts: &EvalOptions,
        auc: Option<f64>,
        ap: Option<f64>,
    ) -> AtThreshold {
        let pooled = self.confusions.iter().copied().sum::<Confusion>();
        AtThreshold {
            threshold: self.threshold,
            chosen_on: self.chosen_on,
            pooled: Metrics::new(pooled, auc, ap, ZeroDivision::One),
            ci: metric_intervals(&self.confusions, hists, opts.resamples, 0.95, opts.seed),
            per_image: self.per_image,
        }
    }
}

/// Evaluates `model` on `samples` (raw, as loaded); `on_image` sees each
/// sample with its probability map (to write pictures), in order, before
/// the next group of [`EvalOptions::concurrent_images`] is loaded, so memory
/// holds that many images at a time plus the pooled scores.
///
/// # Errors
///
/// Loading, preprocessing and inference errors naming the image; a NaN
/// probability inside the FOV; `on_image`'s errors.
pub fn evaluate(
    model: &UNet,
    preprocess: &Preprocess,
    samples: impl IntoIterator<Item = Result<Sample>>,
    opts: &EvalOptions,
    device: &Device,
    on_image: &mut dyn FnMut(&Sample, &[f32]) -> Result<()>,
) -> Result<EvalReport> {
    opts.validate()?;
    let mut pooled_roc = RocAccumulator::new();
    let mut hists = Vec::new();
    let mut fixed = ThresholdCounts::new(opts.threshold, "fixed".into());
    let mut tuned = opts
        .tuned
        .as_ref()
        .map(|t| ThresholdCounts::new(t.threshold, t.chosen_on.clone()));
    let started = Instant::now();
    let mut rescaled = 0;
    let mut samples = samples.into_iter();
    loop {
        let group = samples
            .by_ref()
            .take(opts.concurrent_images.max(1))
            .collect::<Result<Vec<_>>>()?;
        if group.is_empty() {
            break;
        }
        let maps = probability_maps(model, preprocess, &opts.inference, &group, device)?;
        for (sample, probs) in group.iter().zip(maps) {
            let (labels, fov) = (&sample.label.data, Some(sample.fov.data.as_slice()));
            let one = Metrics::evaluate(&probs, labels, fov, opts.threshold)?;
            pooled_roc.push(&probs, labels, fov)?;
            hists.push(ScoreHistogram::new(&probs, labels, fov));
            for counts in std::iter::once(&mut fixed).chain(tuned.as_mut()) {
                counts.push(sample, &probs, one.auc, one.average_precision);
            }
            on_image(sample, &probs)?;
            rescaled += usize::from(rescale_factor(preprocess, &opts.inference, sample).is_some());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let images = hists.len();
    let sorted = pooled_roc.finish();
    let (auc, ap) = (sorted.auc(), sorted.average_precision());
    Ok(EvalReport {
        protocol: format!(
            "{}{}; metrics inside the FOV",
            opts.inference,
            match preprocess.fov_diameter() {
                Some(d) if rescaled > 0 => format!(
                    ", {rescaled} of {images} images resized to the training FOV diameter ({d} px)"
                ),
                _ => String::new(),
            }
        ),
        inference: opts.inference,
        images,
        fixed: fixed.finish(&hists, opts, auc, ap),
        tuned: tuned.map(|t| t.finish(&hists, opts, auc, ap)),
        roc: sorted
            .roc_curve()
            .map(|c| thin_curve(&c, CURVE_POINTS))
            .unwrap_or_default(),
        pr: sorted
            .pr_curve()
            .map(|c| thin_curve(&c, CURVE_POINTS))
            .unwrap_or_default(),
        seconds_per_image: seconds / images.max(1) as f64,
        histograms: hists,
    })
}
