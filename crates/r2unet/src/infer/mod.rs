//! Whole-image inference: probability maps for images of any size, by a
//! single pass over the padded image or by blended sliding windows, with
//! optional flip test-time augmentation.
//!
//! Everything here is written against a [`BatchPredictor`] (NCHW values in,
//! one channel per item out), so it is tested with plain functions and runs
//! the model through [`model_predictor`].

mod single_pass;
mod sliding;

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use single_pass::{reflect_pad, single_pass, tiled_single_pass};
pub use sliding::{Blend, SlidingWindow, sliding_window};

use crate::data::Image;
use crate::error::{Error, Result};
use crate::model::{UNet, UNetConfig};

/// A batch predictor: NCHW values and their shape in, `N x 1 x H x W`
/// probabilities out.
pub type BatchPredictor<'a> = dyn FnMut(&[f32], [usize; 4]) -> Result<Vec<f32>> + 'a;

/// Index `i` of an axis of length `n` reflected at the borders (`-1` → `1`,
/// `n` → `n-2`), periodic beyond one reflection.
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// Single pass or sliding windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum InferMode {
    /// The whole image at once, reflect-padded to a multiple of `2^(depth-1)`.
    SinglePass,
    /// Overlapping windows blended together.
    Sliding(SlidingWindow),
}

/// How a probability map is produced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Inference {
    /// Single pass or sliding windows.
    pub mode: InferMode,
    /// Average over the image and its horizontal, vertical and double flips.
    pub flip_tta: bool,
    /// Memory budget in bytes of one image's single pass: above it (by
    /// [`single_pass_bytes`]) the single pass goes by overlapping tiles
    /// ([`tiled_single_pass`]), which give the same probabilities.
    #[serde(default = "default_max_memory")]
    pub max_memory: u64,
    /// Whether fundus images are first resized to the training images' FOV
    /// diameter (and the map back to the image's size).
    #[serde(default)]
    pub rescale: Rescale,
}

/// Bringing fundus photographs to the scale a model was trained at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rescale {
    /// Resize each image whose FOV diameter differs by more than 5% from
    /// the training images' (recorded with fundus models) to theirs, segment
    /// it, and resize the probabilities back.
    #[default]
    Auto,
    /// Segment every image at its own size.
    None,
}

/// 2 GiB.
pub const DEFAULT_MAX_MEMORY: u64 = 2 << 30;

fn default_max_memory() -> u64 {
    DEFAULT_MAX_MEMORY
}

impl Default for Inference {
    fn default() -> Self {
        Self {
            mode: InferMode::SinglePass,
            flip_tta: false,
            max_memory: DEFAULT_MAX_MEMORY,
            rescale: Rescale::Auto,
        }
    }
}

/// Estimated peak memory per input pixel of a model's eval-mode forward
/// pass: 24 bytes per channel of its first width, calibrated on the retina
/// R2U-Net (widths from 16; a 4000x4000 single pass peaked at 5.4 GiB
/// resident, 362 bytes per pixel).
pub fn single_pass_bytes(config: &UNetConfig, pixels: u64) -> u64 {
    let per_pixel = 24 * config.widths.first().copied().unwrap_or(16).max(16) as u64;
    pixels.saturating_mul(per_pixel)
}

/// How far (in input pixels) an output pixel of `config`'s network sees:
/// every 3x3 convolution at level `l` (scale `2^l`) widens it by `2^l`, each
/// pooling by `2^l` more; rounded up to a multiple of the size multiple.
pub fn receptive_radius(config: &UNetConfig) -> usize {
    let kind = config.architecture.block();
    let convs = 2 * (kind.steps(config.t) + 1);
    let depth = config.widths.len();
    let mut radius = 0;
    for level in 0..depth {
        radius += convs << level;
        if level + 1 < depth {
            // The pooling into the next level, and that level's decoder:
            // the upsampling convolution and the block.
            radius += (1 << level) + ((1 + convs) << level);
        }
    }
    let m = config.size_multiple();
    radius.div_ceil(m) * m
}

impl std::fmt::Display for Inference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            InferMode::SinglePass => write!(f, "single pass over the reflect-padded image")?,
            InferMode::Sliding(s) => write!(
                f,
                "sliding {0}x{0} windows, stride {1}, {2} blending",
                s.window,
                s.stride,
                match s.blend {
                    Blend::Mean => "mean",
                    Blend::Gaussian => "Gaussian",
                }
            )?,
        }
        if self.flip_tta {
            write!(f, ", flip TTA (4 flips averaged)")?;
        }
        if self.rescale == Rescale::None {
            write!(f, ", no rescaling to the training FOV diameter")?;
        }
        Ok(())
    }
}

impl Inference {
    /// The one-channel map of `image` (same size) from `predict`.
    ///
    /// # Errors
    ///
    /// Bad sliding-window settings; the predictor's errors.
    pub fn run(
        &self,
        image: &Image,
        size_multiple: usize,
        predict: &mut BatchPredictor<'_>,
    ) -> Result<Image> {
        self.run_tiled(image, size_multiple, None, predict)
    }

    /// [`Inference::run`], the single pass in `(core, margin)` tiles when given.
    fn run_tiled(
        &self,
        image: &Image,
        size_multiple: usize,
        tiles: Option<(usize, usize)>,
        predict: &mut BatchPredictor<'_>,
    ) -> Result<Image> {
        let mut once = |img: &Image| match (self.mode, tiles) {
            (InferMode::SinglePass, Some((core, margin))) => {
                tiled_single_pass(img, size_multiple, core, margin, predict)
            }
            (InferMode::SinglePass, None) => single_pass(img, size_multiple, predict),
            (InferMode::Sliding(s), _) => {
                s.validate(size_multiple)?;
                sliding_window(img, &s, predict)
            }
        };
        if !self.flip_tta {
            return once(image);
        }
        let mut sum = once(image)?;
        for (fx, fy) in [(true, false), (false, true), (true, true)] {
            let flipped = once(&flip(image, fx, fy))?;
            let back = flip(&flipped, fx, fy);
            for (s, v) in sum.data.iter_mut().zip(back.data) {
                *s += v;
            }
        }
        sum.data.iter_mut().for_each(|v| *v /= 4.0);
        Ok(sum)
    }

    /// The probability map of `image` by `model` (sigmoid of its first output channel).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the image's channels differ from the model's
    /// input channels; bad sliding-window settings.
    pub fn predict(&self, model: &UNet, image: &Image, device: &Device) -> Result<Image> {
        if image.channels != model.config.in_channels {
            return Err(Error::invalid(
                "image",
                format!(
                    "{} channel(s); the model takes {}",
                    image.channels, model.config.in_channels
                ),
            ));
        }
        let mut predictor = model_predictor(model, device);
        let m = model.config.size_multiple();
        let pixels = (image.width.div_ceil(m) * m * image.height.div_ceil(m) * m) as u64;
        let fits = single_pass_bytes(&model.config, pixels) <= self.max_memory;
        if self.mode != InferMode::SinglePass || fits {
            return self.run(image, m, &mut predictor);
        }
        // Tiles whose padded side fits the budget, at least one size multiple of core.
        let margin = receptive_radius(&model.config);
        let per_pixel = single_pass_bytes(&model.config, 1).max(1);
        let side = ((self.max_memory / per_pixel) as f64).sqrt() as usize;
        let core = (side.saturating_sub(2 * margin) / m * m).max(m);
        self.run_tiled(image, m, Some((core, margin)), &mut predictor)
    }
}

/// `image` mirrored left-right (`x`) and/or top-bottom (`y`).
pub fn flip(image: &Image, x: bool, y: bool) -> Image {
    let (w, h, c) = (image.width, image.height, image.channels);
    let mut data = Vec::with_capacity(image.data.len());
    for row in 0..h {
        let sy = if y { h - 1 - row } else { row };
        for col in 0..w {
            let sx = if x { w - 1 - col } else { col };
            let at = (sy * w + sx) * c;
            data.extend_from_slice(&image.data[at..at + c]);
        }
    }
    Image::new(w, h, c, data)
}

/// The model as a [`BatchPredictor`]: eval-mode forward, sigmoid of channel 0.
pub fn model_predictor<'a>(
    model: &'a UNet,
    device: &'a Device,
) -> impl FnMut(&[f32], [usize; 4]) -> Result<Vec<f32>> + 'a {
    move |values, shape| {
        let x = Tensor::<4>::from_data(TensorData::new(values.to_vec(), shape), device);
        let probs = sigmoid(model.forward(x).narrow(1, 0, 1));
        probs
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::invalid("model output", format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w x h x c` image whose values differ everywhere.
    fn ramp(w: usize, h: usize, c: usize) -> Image {
        let data = (0..w * h * c).map(|i| (i as f32 * 0.37).sin()).collect();
        Image::new(w, h, c, data)
    }

    /// Channel 0 of each item, times `factor`.
    fn scaled(factor: f32) -> impl FnMut(&[f32], [usize; 4]) -> Result<Vec<f32>> {
        move |values, [n, c, h, w]| {
            Ok((0..n)
                .flat_map(|i| values[i * c * h * w..i * c * h * w + h * w].to_vec())
                .map(|v| v * factor)
                .collect())
        }
    }

    fn modes() -> Vec<Inference> {
        let mut all = vec![];
        for flip_tta in [false, true] {
            all.push(Inference {
                mode: InferMode::SinglePass,
                flip_tta,
                ..Inference::default()
            });
            for blend in [Blend::Mean, Blend::Gaussian] {
                for (window, stride) in [(8, 3), (8, 8), (16, 5)] {
                    all.push(Inference {
                        mode: InferMode::Sliding(SlidingWindow {
                            window,
                            stride,
                            blend,
                            batch: 7,
                        }),
                        flip_tta,
                        ..Inference::default()
                    });
                }
            }
        }
        all
    }

    #[test]
    fn identity_and_doubling_predictors_give_back_the_image_on_odd_sizes() {
        for (w, h, c) in [(13, 7, 1), (5, 3, 3), (31, 17, 1), (1, 9, 2)] {
            let image = ramp(w, h, c);
            let first = image.channel(0);
            for inference in modes() {
                for factor in [1.0, 2.0] {
                    let got = inference.run(&image, 8, &mut scaled(factor)).unwrap();
                    assert_eq!((got.width, got.height, got.channels), (w, h, 1));
                    for (i, (g, e)) in got.data.iter().zip(&first.data).enumerate() {
                        assert!(
                            (g - factor * e).abs() < 1e-5,
                            "{inference} {w}x{h}x{c} factor {factor}: pixel {i} {g} vs {}",
                            factor * e
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_predictor_that_sees_position_is_blended_not_copied() {
        // The predictor returns each window's own mean: overlapping windows
        // disagree, so the blend must average several values per pixel.
        let image = ramp(20, 20, 1);
        let mut mean = |v: &[f32], [n, _, h, w]: [usize; 4]| -> Result<Vec<f32>> {
            Ok((0..n)
                .flat_map(|i| {
                    let m = v[i * h * w..(i + 1) * h * w].iter().sum::<f32>() / (h * w) as f32;
                    vec![m; h * w]
                })
                .collect())
        };
        let config = SlidingWindow {
            window: 8,
            stride: 4,
            blend: Blend::Mean,
            batch: 3,
        };
        let got = sliding_window(&image, &config, &mut mean).unwrap();
        let distinct: std::collections::BTreeSet<u32> =
            got.data.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 16, "{} distinct values", distinct.len());
    }

    #[test]
    fn a_predictor_returning_the_wrong_size_is_an_error() {
        let image = ramp(9, 9, 1);
        let mut short = |_: &[f32], _: [usize; 4]| -> Result<Vec<f32>> { Ok(vec![0.0; 3]) };
        let sliding = Inference {
            mode: InferMode::Sliding(SlidingWindow {
                window: 8,
                stride: 4,
                blend: Blend::Mean,
                batch: 2,
            }),
            ..Inference::default()
        };
        assert!(sliding.run(&image, 8, &mut short).is_err());
        assert!(Inference::default().run(&image, 8, &mut short).is_err());
    }

    #[test]
    fn flips_by_hand() {
        let img = Image::new(3, 2, 1, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            flip(&img, true, false).data,
            vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]
        );
        assert_eq!(
            flip(&img, false, true).data,
            vec![4.0, 5.0, 6.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(flip(&flip(&img, true, true), true, true), img);
    }

    #[test]
    fn reflect_indices_by_hand() {
        // Axis [a b c]: ... c b | a b c | b a ...
        let got: Vec<usize> = (-2..5).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, vec![2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(reflect(5, 1), 0);
    }
}
