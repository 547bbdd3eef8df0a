//! Sliding-window inference: overlapping windows, batched through a predictor,
//! blended back into a full-size map. Windows that cross a border read the
//! image reflected there (no padded copy of the image is made), so memory is
//! two `f32` planes of the image's size plus one batch of windows.

use serde::{Deserialize, Serialize};

use super::{BatchPredictor, reflect};
use crate::data::Image;
use crate::error::{Error, Result};

/// How overlapping window predictions are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Blend {
    /// Every window pixel weighs the same.
    Mean,
    /// Window centres weigh more than window borders: a Gaussian with sigma =
    /// window/8 (nnU-Net's choice), never zero, so every pixel is covered.
    #[default]
    Gaussian,
}

/// Window, stride, blending and batch size of sliding-window inference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlidingWindow {
    /// Window side in pixels (a multiple of the model's `2^(depth-1)`).
    pub window: usize,
    /// Step between windows, `1..=window`.
    pub stride: usize,
    /// How overlaps are averaged.
    pub blend: Blend,
    /// Windows per predictor call.
    pub batch: usize,
}

impl Default for SlidingWindow {
    /// The retina protocol: 48x48 windows every 8 pixels (the paper's stitching), 32 per batch.
    fn default() -> Self {
        Self {
            window: 48,
            stride: 8,
            blend: Blend::Gaussian,
            batch: 32,
        }
    }
}

impl SlidingWindow {
    /// Checks window, stride and batch.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the value and the expectation.
    pub fn validate(&self, size_multiple: usize) -> Result<()> {
        if self.window == 0 || !self.window.is_multiple_of(size_multiple) {
            return Err(Error::invalid(
                "window",
                format!(
                    "{}; expected a positive multiple of {size_multiple}",
                    self.window
                ),
            ));
        }
        if self.stride == 0 || self.stride > self.window {
            return Err(Error::invalid(
                "stride",
                format!("{}; expected 1..={}", self.stride, self.window),
            ));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", "0; expected at least 1"));
        }
        Ok(())
    }

    /// Window origins along an axis of length `n`, in image coordinates (may
    /// be negative or run past `n`: those parts are read reflected). The axis
    /// is first grown by `(window - stride) / 2` on each side so border pixels
    /// are seen away from window edges, then covered with the last window
    /// flush against the far end.
    fn origins(&self, n: usize) -> Vec<isize> {
        let margin = (self.window - self.stride) / 2;
        let span = (n + 2 * margin).max(self.window);
        let mut starts: Vec<usize> = (0..)
            .map(|i| i * self.stride)
            .take_while(|&p| p + self.window < span)
            .collect();
        starts.push(span - self.window);
        starts
            .into_iter()
            .map(|p| p as isize - margin as isize)
            .collect()
    }

    /// Weight of each window pixel, row-major `window x window`.
    fn weights(&self) -> Vec<f32> {
        let k = self.window;
        let axis: Vec<f32> = match self.blend {
            Blend::Mean => vec![1.0; k],
            Blend::Gaussian => {
                let sigma = k as f32 / 8.0;
                let centre = (k as f32 - 1.0) / 2.0;
                (0..k)
                    .map(|i| (-((i as f32 - centre).powi(2)) / (2.0 * sigma * sigma)).exp())
                    .collect()
            }
        };
        (0..k * k).map(|i| axis[i / k] * axis[i % k]).collect()
    }
}

/// The `image`'s map from overlapping windows: each batch of windows (NCHW,
/// `window x window`) goes through `predict`, which returns one channel per
/// window; overlaps are blended by `config.blend`.
///
/// # Errors
///
/// [`Error::Invalid`] for a bad config or a predictor returning the wrong
/// number of values; the predictor's own errors.
pub fn sliding_window(
    image: &Image,
    config: &SlidingWindow,
    predict: &mut BatchPredictor<'_>,
) -> Result<Image> {
    config.validate(1)?;
    let (w, h, c, k) = (image.width, image.height, image.channels, config.window);
    let weights = config.weights();
    let mut sum = vec![0f32; w * h];
    let mut weight_sum = vec![0f32; w * h];
    let ys = config.origins(h);
    let xs = config.origins(w);
    let origins: Vec<(isize, isize)> = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| (y, x)))
        .collect();
    for chunk in origins.chunks(config.batch) {
        let mut batch = Vec::with_capacity(chunk.len() * c * k * k);
        for &(oy, ox) in chunk {
            for ch in 0..c {
                for dy in 0..k {
                    let sy = reflect(oy + dy as isize, h);
                    for dx in 0..k {
                        let sx = reflect(ox + dx as isize, w);
                        batch.push(image.data[(sy * w + sx) * c + ch]);
                    }
                }
            }
        }
        let out = predict(&batch, [chunk.len(), c, k, k])?;
        if out.len() != chunk.len() * k * k {
            return Err(Error::invalid(
                "predictor output",
                format!(
                    "{} values for {} windows of {k}x{k}; expected {}",
                    out.len(),
                    chunk.len(),
                    chunk.len() * k * k
                ),
            ));
        }
        for (i, &(oy, ox)) in chunk.iter().enumerate() {
            let window = &out[i * k * k..(i + 1) * k * k];
            for dy in 0..k {
                let y = oy + dy as isize;
                if y < 0 || y >= h as isize {
                    continue;
                }
                for dx in 0..k {
                    let x = ox + dx as isize;
                    if x < 0 || x >= w as isize {
                        continue;
                    }
                    let at = y as usize * w + x as usize;
                    let wt = weights[dy * k + dx];
                    sum[at] += wt * window[dy * k + dx];
                    weight_sum[at] += wt;
                }
            }
        }
    }
    for (s, wt) in sum.iter_mut().zip(&weight_sum) {
        *s /= wt;
    }
    Ok(Image::new(w, h, 1, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(window: usize, stride: usize, blend: Blend) -> SlidingWindow {
        SlidingWindow {
            window,
            stride,
            blend,
            batch: 5,
        }
    }

    #[test]
    fn origins_cover_the_axis_with_a_margin() {
        // n = 10, window 4, stride 2: margin 1, span 12, starts 0,2,4,6,8 → -1..7.
        assert_eq!(config(4, 2, Blend::Mean).origins(10), vec![-1, 1, 3, 5, 7]);
        // Image smaller than the window: one window, reflected on both sides.
        assert_eq!(config(8, 8, Blend::Mean).origins(3), vec![0]);
        assert_eq!(config(8, 4, Blend::Mean).origins(3), vec![-2]);
        // The last window is flush with the grown end: span 13 → last start 9 → 8.
        assert_eq!(
            config(4, 2, Blend::Mean).origins(11),
            vec![-1, 1, 3, 5, 7, 8]
        );
    }

    #[test]
    fn gaussian_weights_peak_in_the_centre_and_stay_positive() {
        let w = config(8, 4, Blend::Gaussian).weights();
        assert!(w.iter().all(|&v| v > 0.0));
        assert_eq!(w[3 * 8 + 3], w[4 * 8 + 4]);
        assert!(w[3 * 8 + 3] > w[0]);
        assert!(
            config(8, 4, Blend::Mean)
                .weights()
                .iter()
                .all(|&v| v == 1.0)
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(config(0, 1, Blend::Mean).validate(1).is_err());
        assert!(config(48, 49, Blend::Mean).validate(8).is_err());
        assert!(config(44, 8, Blend::Mean).validate(8).is_err());
        assert!(config(48, 8, Blend::Mean).validate(8).is_ok());
        let mut zero_batch = config(48, 8, Blend::Mean);
        zero_batch.batch = 0;
        assert!(zero_batch.validate(8).is_err());
    }
}
