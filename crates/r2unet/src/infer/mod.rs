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

pub use single_pass::{reflect_pad, single_pass};
pub use sliding::{Blend, SlidingWindow, sliding_window};

use crate::data::Image;
use crate::error::{Error, Result};
use crate::model::UNet;

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
}

impl Default for Inference {
    fn default() -> Self {
        Self {
            mode: InferMode::SinglePass,
            flip_tta: false,
        }
    }
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
        let mut once = |img: &Image| match self.mode {
            InferMode::SinglePass => single_pass(img, size_multiple, predict),
            InferMode::Sliding(s) => {
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
        self.run(image, model.config.size_multiple(), &mut predictor)
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
            flip_tta: false,
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
