//! Everything a training run is made of, saved as `config.json` in its run
//! folder so the run can be resumed and reproduced.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{DatasetKind, LoadOptions};
use crate::error::{Error, Result};
use crate::kernels::Precision;
use crate::model::{UNetConfig, read_config};

/// The training loss (on logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy (the paper's).
    Bce,
    /// Soft Dice.
    Dice,
    /// The sum of both.
    BceDice,
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Cosine decay from the base rate to 1% of it at the last step.
    Cosine,
    /// One cycle, with the defaults of PyTorch's `OneCycleLR`: a cosine rise
    /// from 1/25 of the base rate to the base rate over the first 30% of the
    /// steps, then a cosine fall to 1/25 of 1/10,000 of it at the last step.
    OneCycle,
}

impl Schedule {
    /// The learning rate at `step` of `total`, for the base rate `lr`.
    pub fn rate(self, lr: f64, step: usize, total: usize) -> f64 {
        let progress = (step as f64 / total.max(1) as f64).min(1.0);
        match self {
            Schedule::Constant => lr,
            Schedule::Cosine => cosine_between(lr, 0.01 * lr, progress),
            Schedule::OneCycle => {
                const WARM_UP: f64 = 0.3;
                let start = lr / 25.0;
                if progress < WARM_UP {
                    cosine_between(start, lr, progress / WARM_UP)
                } else {
                    cosine_between(lr, start / 1e4, (progress - WARM_UP) / (1.0 - WARM_UP))
                }
            }
        }
    }
}

/// Half a cosine from `from` (at `t = 0`) to `to` (at `t = 1`).
fn cosine_between(from: f64, to: f64, t: f64) -> f64 {
    to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// The paper's training budget on DRIVE: 190,000 patches (9,500 from each of
/// the 20 training images), batch 32, 50 epochs (`train --protocol paper`).
pub const PAPER_EPOCHS: usize = 50;
/// Patches per training image and epoch under the paper's protocol.
pub const PAPER_PATCHES_PER_IMAGE: usize = 9_500;
/// Batch size under the paper's protocol.
pub const PAPER_BATCH_SIZE: usize = 32;

/// A complete training run description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset layout.
    pub dataset: DatasetKind,
    /// Dataset folder (`None`: the built-in synthetic retina set).
    pub data: Option<PathBuf>,
    /// Synthetic images to generate when `data` is `None`.
    pub synthetic_images: usize,
    /// How the dataset files are read.
    pub load: LoadOptions,
    /// The model.
    pub model: UNetConfig,
    /// Passes over the training patches.
    pub epochs: usize,
    /// Random patches drawn per training image (retina protocol).
    pub patches_per_image: usize,
    /// Side of the (square) training patches; whole-image tasks resize to it.
    pub patch_size: usize,
    /// Patches per optimizer step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Loss.
    pub loss: LossKind,
    /// Weight of positive pixels in BCE (PyTorch `pos_weight`), for thin structures.
    pub pos_weight: Option<f64>,
    /// Fraction of drawn patches (or images) held out for validation.
    pub val_fraction: f32,
    /// Flips, rotations and intensity jitter on training patches.
    pub augment: bool,
    /// Seed of patch sampling, initialisation and augmentation.
    pub seed: u64,
    /// Also write the last checkpoint every this many minutes within an epoch (0: only per epoch).
    pub checkpoint_minutes: f64,
    /// Start from these weights instead of a random initialisation (fine-tuning);
    /// the file must fit `model`.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Train on every image of the set (its training, validation and test
    /// splits), leaving none to test on: for a model to use after the
    /// protocol's numbers were measured with the standard split.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_images: bool,
    /// Keep each epoch's model as `epoch-NNN.safetensors` in the run folder
    /// (about 2.5 MB each for the retina presets), for accuracy against
    /// training time afterwards (`eval --checkpoint epochs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_epochs: bool,
    /// Arithmetic of the 3x3 convolutions on the CPU (bf16: bfloat16
    /// products, f32 sums): their forward passes and input gradients, and on
    /// AMX tiles their weight gradients; batch norm, the 1x1 convolutions,
    /// the loss and Adam stay in f32, and so do the weights. Validation runs
    /// in it too.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl TrainConfig {
    /// A run of `model` on `data` (a dataset layout and its folder; `None`:
    /// the built-in synthetic retinas, 20 images) with the defaults that
    /// `r2unet train` and the Python package document: 10 epochs of 600
    /// patches per training image (whole-image tasks use each image once),
    /// batch 32, 48x48 patches for fundus sets and whole images resized to
    /// 256x256 otherwise, Adam at 1e-3 with cosine decay, BCE, 10% held out
    /// for validation, augmentation, seed 0, a checkpoint every 10 minutes,
    /// f32. Change fields (or use the `with_` methods) for anything else.
    pub fn new(data: Option<(DatasetKind, PathBuf)>, model: UNetConfig) -> Self {
        let whole_image = data.as_ref().is_some_and(|(kind, _)| !kind.is_retina());
        let config = TrainConfig {
            dataset: data.as_ref().map_or(DatasetKind::Drive, |(kind, _)| *kind),
            data: data.map(|(_, dir)| dir),
            synthetic_images: 20,
            load: LoadOptions::default(),
            model,
            epochs: 10,
            patches_per_image: 600,
            patch_size: 0,
            batch_size: 32,
            lr: 1e-3,
            schedule: Schedule::Cosine,
            loss: LossKind::Bce,
            pos_weight: None,
            val_fraction: 0.1,
            augment: true,
            seed: 0,
            checkpoint_minutes: 10.0,
            init: None,
            all_images: false,
            keep_epochs: false,
            precision: Precision::default(),
        };
        config.with_patch_size(if whole_image { 256 } else { 48 })
    }

    /// The side of the training patches (fundus sets) or of the resized
    /// whole images (other tasks), in the run and in its model's config.
    pub fn with_patch_size(mut self, size: usize) -> Self {
        self.patch_size = size;
        self.model.patch_size = size;
        self
    }

    /// Fine-tunes from `weights`: their model (read from the file) replaces
    /// the config's, at the run's patch size.
    ///
    /// # Errors
    ///
    /// An unreadable weights file or config, naming it.
    pub fn with_init(mut self, weights: PathBuf) -> Result<Self> {
        self.model = read_config(&weights)?;
        self.model.patch_size = self.patch_size;
        self.init = Some(weights);
        Ok(self)
    }

    /// The paper's training budget: 50 epochs of 9,500 patches per DRIVE
    /// image (190,000 patches), batch 32.
    pub fn with_paper_budget(mut self) -> Self {
        self.epochs = PAPER_EPOCHS;
        self.patches_per_image = PAPER_PATCHES_PER_IMAGE;
        self.batch_size = PAPER_BATCH_SIZE;
        self
    }

    /// Checks the settings a user can get wrong.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the setting and the accepted range.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let positive = [
            ("epochs", self.epochs),
            ("patches per image", self.patches_per_image),
            ("batch size", self.batch_size),
            ("patch size", self.patch_size),
        ];
        for (what, v) in positive {
            if v == 0 {
                return Err(Error::invalid(what, "must be positive"));
            }
        }
        if !self.patch_size.is_multiple_of(self.model.size_multiple()) {
            return Err(Error::invalid(
                "patch size",
                format!(
                    "{}; expected a multiple of {} for a model of depth {}",
                    self.patch_size,
                    self.model.size_multiple(),
                    self.model.widths.len()
                ),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return Err(Error::invalid(
                "learning rate",
                format!("{}; expected 0 < lr < 1", self.lr),
            ));
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return Err(Error::invalid(
                "validation fraction",
                format!("{}; expected 0 <= f < 0.9", self.val_fraction),
            ));
        }
        if let Some(w) = self.pos_weight
            && !(w.is_finite() && w > 0.0)
        {
            return Err(Error::invalid("pos weight", format!("{w}; expected > 0")));
        }
        if self.data.is_none() && self.synthetic_images < 2 {
            return Err(Error::invalid("synthetic images", "need at least 2"));
        }
        if self.checkpoint_minutes < 0.0 || !self.checkpoint_minutes.is_finite() {
            return Err(Error::invalid("checkpoint minutes", "must be >= 0"));
        }
        if self.all_images && self.load.leave_out.is_some() {
            return Err(Error::invalid(
                "training images",
                "every image (all_images) and a leave-one-out fold exclude each other",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn cosine_falls_from_the_base_rate_to_one_percent() {
        let s = Schedule::Cosine;
        assert!(close(s.rate(1e-3, 0, 100), 1e-3));
        assert!(close(s.rate(1e-3, 50, 100), 0.5 * (1e-3 + 1e-5)));
        assert!(close(s.rate(1e-3, 100, 100), 1e-5));
        assert!(close(s.rate(1e-3, 150, 100), 1e-5));
        assert!(close(Schedule::Constant.rate(1e-3, 70, 100), 1e-3));
    }

    #[test]
    fn one_cycle_rises_for_30_percent_of_the_steps_then_falls() {
        // PyTorch's OneCycleLR(max_lr=4e-3, total_steps=1000) with its
        // defaults: 1.6e-4 at step 0, 4e-3 at step 300, 1.6e-8 at the end.
        let s = Schedule::OneCycle;
        let (lr, total) = (4e-3, 1000);
        assert!(close(s.rate(lr, 0, total), 1.6e-4));
        assert!(close(s.rate(lr, 150, total), 0.5 * (1.6e-4 + 4e-3)));
        assert!(close(s.rate(lr, 300, total), 4e-3));
        assert!(close(s.rate(lr, 650, total), 0.5 * (4e-3 + 1.6e-8)));
        assert!(close(s.rate(lr, total, total), 1.6e-8));
        let rates: Vec<f64> = (0..=total).map(|t| s.rate(lr, t, total)).collect();
        assert!(rates[..=300].windows(2).all(|w| w[0] < w[1]));
        assert!(rates[300..].windows(2).all(|w| w[0] > w[1]));
    }
}
