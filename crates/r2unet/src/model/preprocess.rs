//! How raw images become a model's inputs, recorded with its weights so
//! inference does what training did.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::{metadata_of_bytes, read_metadata};
use crate::data::fov::fov_diameter;
use crate::data::preprocess::{
    RETINA_CLAHE_TILES, resize_image, resize_mask, retina_protocol_with,
};
use crate::data::{Mask, Sample};
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
        /// Median field-of-view diameter of the training images in pixels
        /// ([`fov_diameter`]), so inference can bring fundus photographs of
        /// another scale to the one the model learnt; `None` in weights
        /// saved before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fov_diameter: Option<f32>,
    },
    /// Resized to a square side (channels kept).
    Resize {
        /// Side in pixels.
        size: usize,
        /// The window in Hounsfield units the loader applied to CT slices
        /// (lung CT), so inference reads a slice's raw values and windows
        /// them the same way; `None` for photographs, and in CT weights
        /// saved before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hu_window: Option<(f32, f32)>,
    },
}

/// Relative difference of FOV diameters below which an image is segmented
/// at its own size: photographs from one camera differ by a few pixels.
pub const RESCALE_TOLERANCE: f64 = 0.05;

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
        self.check_size(sample)?;
        let mut out = sample.clone();
        match *self {
            Preprocess::Retina { mean, std, .. } => {
                out.image = retina_protocol_with(&sample.image, mean, std)?;
            }
            Preprocess::Resize { size, .. } => {
                out.image = resize_image(&sample.image, size, size);
                out.label = resize_mask(&sample.label, size, size);
                out.fov = resize_mask(&sample.fov, size, size);
            }
        }
        Ok(out)
    }

    /// The CT window of a model trained on CT slices, when recorded.
    pub fn hu_window(&self) -> Option<(f32, f32)> {
        match *self {
            Preprocess::Resize { hu_window, .. } => hu_window,
            Preprocess::Retina { .. } => None,
        }
    }

    /// The training images' FOV diameter, when recorded (fundus models).
    pub fn fov_diameter(&self) -> Option<f32> {
        match *self {
            Preprocess::Retina { fov_diameter, .. } => fov_diameter,
            Preprocess::Resize { .. } => None,
        }
    }

    /// The factor that brings a fundus image whose field of view is `fov` to
    /// the training images' FOV diameter; `None` when no diameter is
    /// recorded, the FOV is empty, or the factor is within
    /// [`RESCALE_TOLERANCE`] of 1 (the same camera).
    pub fn fov_scale(&self, fov: &Mask) -> Option<f64> {
        let target = f64::from(self.fov_diameter()?);
        let diameter = fov_diameter(fov);
        if diameter == 0 {
            return None;
        }
        let scale = target / diameter as f64;
        ((scale - 1.0).abs() > RESCALE_TOLERANCE).then_some(scale)
    }

    /// Refuses an image too small for this preprocessing (CLAHE's tiles),
    /// naming the sample.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a fundus image under 8x8 pixels.
    pub fn check_size(&self, sample: &Sample) -> Result<()> {
        let (w, h) = (sample.image.width, sample.image.height);
        if matches!(self, Preprocess::Retina { .. })
            && (w < RETINA_CLAHE_TILES || h < RETINA_CLAHE_TILES)
        {
            return Err(Error::invalid(
                format!("image `{}`", sample.id),
                format!(
                    "{w}x{h} pixels is too small: the fundus preprocessing needs at \
                     least {0}x{0} (CLAHE's {0}x{0} tile grid)",
                    RETINA_CLAHE_TILES
                ),
            ));
        }
        Ok(())
    }

    /// Input channels of the model for images of `channels` channels.
    pub fn channels(&self, channels: usize) -> usize {
        match self {
            Preprocess::Retina { .. } => 1,
            Preprocess::Resize { .. } => channels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ct_window_is_recorded_and_old_files_read_without_it() {
        let ct = Preprocess::Resize {
            size: 256,
            hu_window: Some((-1000.0, 400.0)),
        };
        let json = serde_json::to_string(&ct).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"resize","size":256,"hu_window":[-1000.0,400.0]}"#
        );
        assert_eq!(Preprocess::parse(&json, Path::new("w")).unwrap(), ct);
        // Weights and run states written before the window was recorded.
        let old = Preprocess::parse(r#"{"kind":"resize","size":128}"#, Path::new("w")).unwrap();
        assert_eq!(old.hu_window(), None);
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"kind":"resize","size":128}"#
        );
    }

    #[test]
    fn the_fov_scale_brings_a_disc_to_the_training_diameter() {
        let retina = |fov_diameter| Preprocess::Retina {
            mean: 0.5,
            std: 0.2,
            fov_diameter,
        };
        let fov = |width| Mask::filled(width, 10, 1);
        let model = retina(Some(540.0));
        assert_eq!(model.fov_scale(&fov(1080)), Some(0.5));
        assert_eq!(model.fov_scale(&fov(270)), Some(2.0));
        // Within 5% (the same camera): segmented as it is.
        assert_eq!(model.fov_scale(&fov(560)), None);
        assert_eq!(model.fov_scale(&fov(520)), None);
        assert_eq!(model.fov_scale(&Mask::filled(8, 8, 0)), None);
        // Weights saved before the diameter was recorded, and CT/skin models.
        assert_eq!(retina(None).fov_scale(&fov(1080)), None);
        assert_eq!(
            Preprocess::Resize {
                size: 256,
                hu_window: None
            }
            .fov_scale(&fov(1080)),
            None
        );
    }

    #[test]
    fn weights_without_a_recorded_diameter_still_read() {
        let old: Preprocess =
            serde_json::from_str(r#"{"kind":"retina","mean":0.4,"std":0.1}"#).unwrap();
        assert_eq!(old.fov_diameter(), None);
        let new = Preprocess::Retina {
            mean: 0.4,
            std: 0.1,
            fov_diameter: Some(540.0),
        };
        let json = new.metadata().1;
        assert!(json.contains(r#""fov_diameter":540.0"#), "{json}");
        assert_eq!(serde_json::from_str::<Preprocess>(&json).unwrap(), new);
        assert!(!old.metadata().1.contains("fov_diameter"));
    }
}
