//! How raw images become a model's inputs, recorded with its weights so
//! inference does what training did.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::{metadata_of_bytes, read_metadata};
use crate::data::Sample;
use crate::data::preprocess::{
    RETINA_CLAHE_TILES, resize_image, resize_mask, retina_protocol_with,
};
use crate::error::{Error, Result};

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

    /// The preprocessing recorded in a weights file's metadata; `None` if
    /// it has none (a run folder's checkpoint keeps it in `state.json`).
    ///
    /// # Errors
    ///
    /// An unreadable file or broken JSON, naming the file.
    pub fn of_file(weights: &Path) -> Result<Option<Preprocess>> {
        read_metadata(weights, PREPROCESS_KEY)?
            .map(|json| Self::parse(&json, weights))
            .transpose()
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
                let (w, h) = (sample.image.width, sample.image.height);
                if w < RETINA_CLAHE_TILES || h < RETINA_CLAHE_TILES {
                    return Err(Error::invalid(
                        format!("image `{}`", sample.id),
                        format!(
                            "{w}x{h} pixels is too small: the fundus preprocessing needs at \
                             least {0}x{0} (CLAHE's {0}x{0} tile grid)",
                            RETINA_CLAHE_TILES
                        ),
                    ));
                }
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
