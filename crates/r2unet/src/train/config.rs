//! Everything a training run is made of, saved as `config.json` in its run
//! folder so the run can be resumed and reproduced.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{DatasetKind, LoadOptions};
use crate::error::{Error, Result};
use crate::model::UNetConfig;

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
}

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
}

impl TrainConfig {
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
