//! Random patches for the retina protocol: N seeded patch positions per image
//! (centres optionally inside the FOV), a validation fraction held out, and a
//! Burn dataset + batcher that cut (and augment) patches on the fly — only the
//! positions are stored, so 190,000 patches of 48x48 take 2 MiB, not 3.5 GiB.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::augment::Augment;
use super::sample::Sample;
use crate::error::{Error, Result};

/// How patches are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchConfig {
    /// Patch side in pixels (48 in the paper).
    pub size: usize,
    /// Patches drawn per image.
    pub per_image: usize,
    /// Draw centres only inside the field of view.
    pub inside_fov: bool,
    /// Fraction of all drawn patches held out for validation (0.1 in the classic protocol).
    pub val_fraction: f32,
    /// Seed of the draw.
    pub seed: u64,
}

/// Where a patch is: image index and top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchRef {
    /// Index into the sample list.
    pub image: u32,
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
}

/// Draws `per_image` patch positions per sample, shuffles them and splits off
/// the validation fraction: `(train, val)`.
///
/// # Errors
///
/// [`Error::Invalid`] for a patch larger than an image, a zero size or count,
/// a fraction outside [0, 1), or an image whose FOV leaves no valid centre.
pub fn sample_patches(
    samples: &[Sample],
    cfg: &PatchConfig,
) -> Result<(Vec<PatchRef>, Vec<PatchRef>)> {
    if cfg.size == 0 || cfg.per_image == 0 {
        return Err(Error::invalid(
            "patches",
            "size and patches per image must be positive",
        ));
    }
    if !(0.0..1.0).contains(&cfg.val_fraction) {
        return Err(Error::invalid(
            "validation fraction",
            format!("{}; expected a value in [0, 1)", cfg.val_fraction),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut refs = Vec::with_capacity(samples.len() * cfg.per_image);
    for (index, s) in samples.iter().enumerate() {
        let (w, h, p) = (s.image.width, s.image.height, cfg.size);
        if w < p || h < p {
            return Err(Error::invalid(
                "patch size",
                format!("{p} exceeds image `{}` of {w}x{h}", s.id),
            ));
        }
        // Valid corners: x in 0..=w-p; the centre is x + p/2.
        let corners: Vec<(u32, u32)> = if cfg.inside_fov {
            let mut inside = Vec::new();
            for y in 0..=h - p {
                for x in 0..=w - p {
                    if s.fov.get(x + p / 2, y + p / 2) == 1 {
                        inside.push((x as u32, y as u32));
                    }
                }
            }
            inside
        } else {
            Vec::new()
        };
        if cfg.inside_fov && corners.is_empty() {
            return Err(Error::invalid(
                "patches",
                format!(
                    "image `{}` has no FOV pixel that can centre a {p}x{p} patch",
                    s.id
                ),
            ));
        }
        for _ in 0..cfg.per_image {
            let (x, y) = if cfg.inside_fov {
                corners[rng.random_range(0..corners.len())]
            } else {
                (
                    rng.random_range(0..=(w - p) as u32),
                    rng.random_range(0..=(h - p) as u32),
                )
            };
            refs.push(PatchRef {
                image: index as u32,
                x,
                y,
            });
        }
    }
    refs.shuffle(&mut rng);
    let n_val = (refs.len() as f64 * cfg.val_fraction as f64).round() as usize;
    let train = refs.split_off(n_val);
    Ok((train, refs))
}

/// One cut patch: CHW image, label and FOV planes.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchItem {
    /// `channels * size * size` values.
    pub image: Vec<f32>,
    /// `size * size` values, 0 or 1.
    pub label: Vec<f32>,
    /// `size * size` values, 0 or 1.
    pub fov: Vec<f32>,
}

/// Cuts the patch at `r` out of `samples` (image interleaved HWC → CHW).
pub fn cut(samples: &[Sample], r: PatchRef, size: usize) -> PatchItem {
    let s = &samples[r.image as usize];
    let (c, w) = (s.image.channels, s.image.width);
    let (x0, y0) = (r.x as usize, r.y as usize);
    let mut image = Vec::with_capacity(c * size * size);
    for ch in 0..c {
        for y in y0..y0 + size {
            let row = &s.image.data[(y * w + x0) * c..(y * w + x0 + size) * c];
            image.extend(row.iter().skip(ch).step_by(c));
        }
    }
    let plane = |m: &super::image::Mask| {
        (y0..y0 + size)
            .flat_map(|y| {
                m.data[y * w + x0..y * w + x0 + size]
                    .iter()
                    .map(|&v| v as f32)
            })
            .collect::<Vec<f32>>()
    };
    PatchItem {
        image,
        label: plane(&s.label),
        fov: plane(&s.fov),
    }
}

/// A Burn dataset of patches cut on the fly, augmented deterministically per
/// `(seed, epoch, index)` so a resumed run sees the same patches.
#[derive(Clone)]
pub struct PatchDataset {
    samples: Arc<Vec<Sample>>,
    refs: Arc<Vec<PatchRef>>,
    size: usize,
    augment: Augment,
    seed: u64,
    epoch: u64,
}

impl PatchDataset {
    /// Patches at `refs` of `samples`, augmented with `augment`.
    pub fn new(
        samples: Arc<Vec<Sample>>,
        refs: Vec<PatchRef>,
        size: usize,
        augment: Augment,
        seed: u64,
    ) -> Self {
        Self {
            samples,
            refs: Arc::new(refs),
            size,
            augment,
            seed,
            epoch: 0,
        }
    }

    /// The same patches with the augmentation draws of `epoch`.
    pub fn for_epoch(&self, epoch: u64) -> Self {
        Self {
            epoch,
            ..self.clone()
        }
    }
}

impl Dataset<PatchItem> for PatchDataset {
    fn get(&self, index: usize) -> std::result::Result<PatchItem, DatasetError> {
        let r = *self.refs.get(index).ok_or_else(|| {
            DatasetError::new(Error::invalid(
                "patch index",
                format!("{index} of {}", self.refs.len()),
            ))
        })?;
        let mut item = cut(&self.samples, r, self.size);
        if self.augment != Augment::NONE {
            let stream = self.seed ^ (self.epoch << 40) ^ index as u64;
            let mut rng = ChaCha8Rng::seed_from_u64(stream);
            let PatchItem { image, label, fov } = &mut item;
            self.augment
                .apply(&mut rng, self.size, image, &mut [label, fov]);
        }
        Ok(item)
    }

    fn len(&self) -> usize {
        self.refs.len()
    }
}

/// A batch of patches on a device.
#[derive(Debug, Clone)]
pub struct PatchBatch {
    /// `[b, c, s, s]` images.
    pub images: Tensor<4>,
    /// `[b, 1, s, s]` labels, 0/1.
    pub labels: Tensor<4>,
    /// `[b, 1, s, s]` field of view, 0/1.
    pub fov: Tensor<4>,
}

/// Stacks [`PatchItem`]s into a [`PatchBatch`].
#[derive(Debug, Clone, Copy)]
pub struct PatchBatcher {
    /// Patch side.
    pub size: usize,
    /// Image channels.
    pub channels: usize,
}

impl Batcher<PatchItem, PatchBatch> for PatchBatcher {
    fn batch(&self, items: Vec<PatchItem>, device: &Device) -> PatchBatch {
        let (b, s, c) = (items.len(), self.size, self.channels);
        let mut images = Vec::with_capacity(b * c * s * s);
        let mut labels = Vec::with_capacity(b * s * s);
        let mut fov = Vec::with_capacity(b * s * s);
        for item in items {
            images.extend(item.image);
            labels.extend(item.label);
            fov.extend(item.fov);
        }
        PatchBatch {
            images: Tensor::from_data(TensorData::new(images, [b, c, s, s]), device),
            labels: Tensor::from_data(TensorData::new(labels, [b, 1, s, s]), device),
            fov: Tensor::from_data(TensorData::new(fov, [b, 1, s, s]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image::{Image, Mask};
    use crate::data::sample::FovSource;

    fn sample(w: usize, h: usize) -> Sample {
        // Pixel value = its index, so a cut patch tells where it came from.
        let image = Image::new(w, h, 1, (0..w * h).map(|i| i as f32).collect());
        let mut fov = Mask::filled(w, h, 0);
        for y in h / 4..3 * h / 4 {
            for x in w / 4..3 * w / 4 {
                fov.data[y * w + x] = 1;
            }
        }
        Sample {
            id: "t".into(),
            label: Mask::filled(w, h, 0),
            image,
            fov,
            fov_source: FovSource::Given,
        }
    }

    fn config() -> PatchConfig {
        PatchConfig {
            size: 8,
            per_image: 50,
            inside_fov: true,
            val_fraction: 0.1,
            seed: 7,
        }
    }

    #[test]
    fn patches_are_seeded_split_and_centred_in_the_fov() {
        let samples = vec![sample(40, 30), sample(33, 21)];
        let (train, val) = sample_patches(&samples, &config()).unwrap();
        assert_eq!((train.len(), val.len()), (90, 10));
        assert_eq!(sample_patches(&samples, &config()).unwrap().0, train);
        let other = PatchConfig {
            seed: 8,
            ..config()
        };
        assert_ne!(sample_patches(&samples, &other).unwrap().0, train);
        for r in train.iter().chain(&val) {
            let s = &samples[r.image as usize];
            assert_eq!(s.fov.get(r.x as usize + 4, r.y as usize + 4), 1);
            assert!(r.x as usize + 8 <= s.image.width && r.y as usize + 8 <= s.image.height);
        }
    }

    #[test]
    fn cut_takes_the_right_pixels() {
        let samples = vec![sample(40, 30)];
        let item = cut(
            &samples,
            PatchRef {
                image: 0,
                x: 3,
                y: 5,
            },
            8,
        );
        assert_eq!(item.image[0], (5 * 40 + 3) as f32);
        assert_eq!(item.image[8 * 8 - 1], (12 * 40 + 10) as f32);
    }

    #[test]
    fn bad_configs_are_errors() {
        let samples = vec![sample(10, 10)];
        let too_big = PatchConfig {
            size: 12,
            ..config()
        };
        assert!(
            sample_patches(&samples, &too_big)
                .unwrap_err()
                .to_string()
                .contains("exceeds")
        );
        let bad_fraction = PatchConfig {
            val_fraction: 1.0,
            ..config()
        };
        assert!(sample_patches(&samples, &bad_fraction).is_err());
        let mut dark = sample(20, 20);
        dark.fov = Mask::filled(20, 20, 0);
        assert!(
            sample_patches(&[dark], &config())
                .unwrap_err()
                .to_string()
                .contains("no FOV pixel")
        );
    }

    #[test]
    fn dataset_and_batcher_make_tensors() {
        let samples = Arc::new(vec![sample(40, 30)]);
        let (train, _) = sample_patches(&samples, &config()).unwrap();
        let ds = PatchDataset::new(samples, train, 8, Augment::default(), 1);
        assert_eq!(ds.len(), 45);
        let a = ds.get(3).unwrap();
        assert_eq!(a, ds.get(3).unwrap(), "deterministic per index");
        let items = (0..4).map(|i| ds.get(i).unwrap()).collect();
        let batch = PatchBatcher {
            size: 8,
            channels: 1,
        }
        .batch(items, &Device::flex());
        assert_eq!(batch.images.dims(), [4, 1, 8, 8]);
        assert_eq!(batch.fov.dims(), [4, 1, 8, 8]);
        assert!(ds.get(45).is_err());
    }
}
