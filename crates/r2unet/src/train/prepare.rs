//! Turning a dataset split into training-ready samples: the retina protocol
//! (grey, dataset standardisation, CLAHE, gamma) for fundus images, windowed
//! and resized whole images for the other tasks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::preprocess::{resize_image, resize_mask, retina_protocol, retina_protocol_with};
use crate::data::synthetic::SyntheticRetina;
use crate::data::{DatasetKind, Sample, Split};
use crate::error::{Error, Result};
use crate::model::{metadata_of_bytes, read_metadata};

use super::checkpoint::RunDir;
use super::config::TrainConfig;

/// How raw images become model inputs; saved with a run so inference does the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Preprocess {
    /// Grey, standardised with the training set's statistics, CLAHE, gamma (1 channel).
    Retina {
        /// Mean of the training images' grey values.
        mean: f32,
        /// Their standard deviation.
        std: f32,
    },
    /// Resized to a square side (channels kept; CT already windowed by the loader).
    Resize {
        /// Side in pixels.
        size: usize,
    },
}

/// Safetensors metadata key of the preprocessing a model was trained with.
pub const PREPROCESS_KEY: &str = "r2unet_preprocess";

impl Preprocess {
    /// The `(key, JSON)` metadata entry that records this preprocessing in a weights file.
    pub fn metadata(&self) -> (&'static str, String) {
        let json = serde_json::to_string(self).expect("preprocess serialises");
        (PREPROCESS_KEY, json)
    }

    /// The preprocessing recorded in the metadata of safetensors bytes; `name` names them in errors.
    ///
    /// # Errors
    ///
    /// A corrupt header or broken JSON.
    pub fn of_bytes(bytes: &[u8], name: &Path) -> Result<Option<Preprocess>> {
        metadata_of_bytes(bytes, name, PREPROCESS_KEY)?
            .map(|json| Self::parse(&json, name))
            .transpose()
    }

    fn parse(json: &str, source: &Path) -> Result<Preprocess> {
        serde_json::from_str(json).map_err(|e| Error::Config {
            path: source.to_path_buf(),
            reason: format!("{PREPROCESS_KEY}: {e}"),
        })
    }

    /// The preprocessing recorded with a weights file: in its metadata, else
    /// in the `state.json` of the run folder it sits in; `None` if neither.
    ///
    /// # Errors
    ///
    /// Unreadable files or broken JSON, naming the file.
    pub fn of_weights(weights: &Path) -> Result<Option<Preprocess>> {
        if let Some(json) = read_metadata(weights, PREPROCESS_KEY)? {
            return Self::parse(&json, weights).map(Some);
        }
        let run = RunDir(weights.parent().unwrap_or(Path::new(".")).to_path_buf());
        if run.state().is_file() {
            return Ok(Some(run.read_state()?.preprocess));
        }
        Ok(None)
    }

    /// Applies this preprocessing to one sample.
    ///
    /// # Errors
    ///
    /// An image too small for CLAHE's tiles.
    pub fn apply(&self, sample: &Sample) -> Result<Sample> {
        let mut out = sample.clone();
        match *self {
            Preprocess::Retina { mean, std } => {
                out.image = retina_protocol_with(&sample.image, mean, std)?;
            }
            Preprocess::Resize { size } => {
                out.image = resize_image(&sample.image, size, size);
                out.label = resize_mask(&sample.label, size, size);
                out.fov = resize_mask(&sample.fov, size, size);
            }
        }
        Ok(out)
    }

    /// Input channels of the model for images of `channels` channels.
    pub fn channels(&self, channels: usize) -> usize {
        match self {
            Preprocess::Retina { .. } => 1,
            Preprocess::Resize { .. } => channels,
        }
    }
}

/// The raw training samples of a config: its dataset's training split, or the synthetic set.
///
/// # Errors
///
/// Layout or file errors naming the file.
pub fn training_samples(config: &TrainConfig) -> Result<Vec<Sample>> {
    match &config.data {
        Some(dir) => {
            let split =
                if config.dataset == DatasetKind::Folder || config.dataset == DatasetKind::Nifti {
                    if dir.join("train").is_dir() {
                        Split::Train
                    } else {
                        Split::All
                    }
                } else {
                    Split::Train
                };
            config.dataset.load(dir, split, &config.load)
        }
        None => Ok(SyntheticRetina::default()
            .dataset(config.synthetic_images, config.seed.wrapping_mul(1000))),
    }
}

/// Fits the preprocessing of `kind` on the training samples and applies it.
///
/// # Errors
///
/// [`Error::Invalid`] for mixed channel counts; CLAHE errors on tiny images.
pub fn prepare(
    kind: DatasetKind,
    synthetic: bool,
    patch_size: usize,
    raw: &[Sample],
) -> Result<(Preprocess, Vec<Sample>)> {
    if let Some(first) = raw.first()
        && let Some(odd) = raw
            .iter()
            .find(|s| s.image.channels != first.image.channels)
    {
        return Err(Error::invalid(
            "training images",
            format!(
                "`{}` has {} channels, `{}` has {}",
                first.id, first.image.channels, odd.id, odd.image.channels
            ),
        ));
    }
    let preprocess = if kind.is_retina() || synthetic {
        let mut images: Vec<_> = raw.iter().map(|s| s.image.clone()).collect();
        let (mean, std) = retina_protocol(&mut images)?;
        let prepared = raw
            .iter()
            .zip(images)
            .map(|(s, image)| Sample { image, ..s.clone() })
            .collect();
        return Ok((Preprocess::Retina { mean, std }, prepared));
    } else {
        Preprocess::Resize { size: patch_size }
    };
    let prepared = raw
        .iter()
        .map(|s| preprocess.apply(s))
        .collect::<Result<_>>()?;
    Ok((preprocess, prepared))
}
