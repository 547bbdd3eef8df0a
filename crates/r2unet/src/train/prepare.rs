//! Turning a dataset split into training-ready samples: the retina protocol
//! (grey, dataset standardisation, CLAHE, gamma) for fundus images, windowed
//! and resized whole images for the other tasks.

use crate::data::fov::fov_diameter;
use crate::data::patches::{PatchConfig, sample_patches};
use crate::data::preprocess::retina_protocol;
use crate::data::synthetic::SyntheticRetina;
use crate::data::{DatasetKind, Sample, Split};
use crate::error::{Error, Result};
use crate::model::Preprocess;

use super::config::TrainConfig;

/// The raw training samples of a config: its dataset's training split, or the synthetic set.
///
/// # Errors
///
/// Layout or file errors naming the file.
pub fn training_samples(config: &TrainConfig) -> Result<Vec<Sample>> {
    match &config.data {
        Some(dir) => {
            let split = if config.all_images {
                Split::All
            } else if config.dataset == DatasetKind::Folder || config.dataset == DatasetKind::Nifti
            {
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

/// Fits the preprocessing of `config`'s dataset on its raw training samples
/// and applies it.
///
/// # Errors
///
/// [`Error::Invalid`] for mixed channel counts; CLAHE errors on tiny images.
pub fn prepare(config: &TrainConfig, raw: &[Sample]) -> Result<(Preprocess, Vec<Sample>)> {
    let kind = config.dataset;
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
    let preprocess = if kind.is_retina() || config.data.is_none() {
        let mut images: Vec<_> = raw.iter().map(|s| s.image.clone()).collect();
        let (mean, std) = retina_protocol(&mut images)?;
        let prepared = raw
            .iter()
            .zip(images)
            .map(|(s, image)| Sample { image, ..s.clone() })
            .collect();
        let fov_diameter = Some(median_fov_diameter(raw));
        return Ok((
            Preprocess::Retina {
                mean,
                std,
                fov_diameter,
            },
            prepared,
        ));
    } else {
        Preprocess::Resize {
            size: config.patch_size,
            hu_window: ct_window(config),
        }
    };
    let prepared = raw
        .iter()
        .map(|s| preprocess.apply(s))
        .collect::<Result<_>>()?;
    Ok((preprocess, prepared))
}

/// The CT window a run's loader applies to every training image, recorded
/// with its weights: the lung layout's (its entries are CT slices). NIfTI
/// volumes are windowed only when they look like Hounsfield units, so no
/// window is recorded for them.
fn ct_window(config: &TrainConfig) -> Option<(f32, f32)> {
    (config.dataset == DatasetKind::Lung).then_some(config.load.hu_window)
}

/// `preprocess` of a run with `config`, with the CT window its loader
/// applies where a run started before windows were recorded has none (so
/// its resumed checkpoints and exported weights record it).
pub(crate) fn with_ct_window(preprocess: Preprocess, config: &TrainConfig) -> Preprocess {
    match preprocess {
        Preprocess::Resize {
            size,
            hu_window: None,
        } => Preprocess::Resize {
            size,
            hu_window: ct_window(config),
        },
        other => other,
    }
}

/// How a run with `config` draws its patches from the prepared samples:
/// FOV-centred patches of every training image (retina), or each resized
/// whole image once (`whole_image`: PH2, lung CT, folders); `val_fraction`
/// of them held out for validation.
pub(crate) fn patch_config(config: &TrainConfig, whole_image: bool) -> PatchConfig {
    PatchConfig {
        size: config.patch_size,
        per_image: if whole_image {
            1
        } else {
            config.patches_per_image
        },
        inside_fov: !whole_image,
        val_fraction: config.val_fraction,
        seed: config.seed,
    }
}

/// The training images that a run with `config` held out whole for
/// validation, as its trainer drew them: whole-image tasks (PH2, lung CT,
/// folders, NIfTI slices) validate on whole images, so their metrics at
/// full size (`eval --held-out`) can choose a threshold or inference
/// options without the test images.
///
/// # Errors
///
/// Data errors; [`Error::Invalid`] for a retina run, which holds out
/// patches of every training image rather than whole images.
pub fn held_out_samples(config: &TrainConfig) -> Result<Vec<Sample>> {
    let raw = training_samples(config)?;
    let (preprocess, prepared) = prepare(config, &raw)?;
    if !matches!(preprocess, Preprocess::Resize { .. }) {
        return Err(Error::invalid(
            "held-out images",
            format!(
                "a {} run holds out patches of every training image, not whole images; \
                 evaluate on another split",
                config.dataset
            ),
        ));
    }
    let (_, val) = sample_patches(&prepared, &patch_config(config, true))?;
    let mut images: Vec<usize> = val.iter().map(|r| r.image as usize).collect();
    images.sort_unstable();
    Ok(images.into_iter().map(|i| raw[i].clone()).collect())
}

/// The median FOV diameter ([`fov_diameter`]) of `samples`, in pixels.
fn median_fov_diameter(samples: &[Sample]) -> f32 {
    let mut diameters: Vec<usize> = samples.iter().map(|s| fov_diameter(&s.fov)).collect();
    diameters.sort_unstable();
    diameters.get(diameters.len() / 2).copied().unwrap_or(0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, Preset};

    #[test]
    fn runs_from_before_the_window_was_recorded_get_their_loaders() {
        let model = Preset::Retina.config(Architecture::R2unet);
        let old = Preprocess::Resize {
            size: 256,
            hu_window: None,
        };
        let lung = TrainConfig::new(Some((DatasetKind::Lung, "LUNG".into())), model.clone());
        assert_eq!(
            with_ct_window(old, &lung).hu_window(),
            Some((-1000.0, 400.0))
        );
        // Photographs (PH2) have no window; a recorded one is kept.
        let ph2 = TrainConfig::new(Some((DatasetKind::Ph2, "PH2".into())), model);
        assert_eq!(with_ct_window(old, &ph2), old);
        let kept = Preprocess::Resize {
            size: 256,
            hu_window: Some((-1200.0, 600.0)),
        };
        assert_eq!(with_ct_window(kept, &lung), kept);
    }
}
