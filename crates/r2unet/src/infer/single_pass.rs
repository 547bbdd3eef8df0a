//! Single-pass inference: the whole image, reflect-padded to a multiple of
//! `2^(depth-1)`, through the fully convolutional model at once.

use super::{BatchPredictor, reflect};
use crate::data::Image;
use crate::error::{Error, Result};

/// `image` grown to `width x height` (at least its own size) by reflection,
/// as CHW planes; the original sits at the top-left corner.
pub fn reflect_pad(image: &Image, width: usize, height: usize) -> Vec<f32> {
    let (w, h, c) = (image.width, image.height, image.channels);
    let (width, height) = (width.max(w), height.max(h));
    let mut out = Vec::with_capacity(c * width * height);
    for ch in 0..c {
        for y in 0..height {
            let sy = reflect(y as isize, h);
            for x in 0..width {
                out.push(image.data[(sy * w + reflect(x as isize, w)) * c + ch]);
            }
        }
    }
    out
}

/// The one-channel map of `image` (same size) from one `predict` call on the
/// image reflect-padded to a multiple of `size_multiple`, cropped back.
///
/// # Errors
///
/// [`Error::Invalid`] if the predictor returns the wrong number of values;
/// the predictor's own errors.
pub fn single_pass(
    image: &Image,
    size_multiple: usize,
    predict: &mut BatchPredictor<'_>,
) -> Result<Image> {
    let m = size_multiple.max(1);
    let (w, h) = (image.width, image.height);
    let (pw, ph) = (w.div_ceil(m) * m, h.div_ceil(m) * m);
    let values = predict(&reflect_pad(image, pw, ph), [1, image.channels, ph, pw])?;
    if values.len() != pw * ph {
        return Err(Error::invalid(
            "predictor output",
            format!("{} values for a {pw}x{ph} input", values.len()),
        ));
    }
    let cropped = (0..h)
        .flat_map(|y| values[y * pw..y * pw + w].iter().copied())
        .collect();
    Ok(Image::new(w, h, 1, cropped))
}

/// [`single_pass`] computed in overlapping tiles, for images whose single
/// pass would not fit in memory: the image is reflect-padded exactly as for
/// the single pass, cut into `core x core` blocks, and each block is run
/// with `margin` extra pixels of the padded image on every side that has
/// them, then cropped back to its block. With `margin` at least the
/// network's receptive radius and both multiples of `size_multiple` (so
/// pooling grids line up), every output pixel sees what it sees in the
/// single pass: the result equals it up to floating-point rounding.
///
/// # Errors
///
/// [`Error::Invalid`] if `core` or `margin` is not a positive multiple of
/// `size_multiple` (margin may be 0); the predictor's errors.
pub fn tiled_single_pass(
    image: &Image,
    size_multiple: usize,
    core: usize,
    margin: usize,
    predict: &mut BatchPredictor<'_>,
) -> Result<Image> {
    let m = size_multiple.max(1);
    if core == 0 || !core.is_multiple_of(m) || !margin.is_multiple_of(m) {
        return Err(Error::invalid(
            "inference tiles",
            format!("core {core} and margin {margin} must be multiples of {m}, core positive"),
        ));
    }
    let (w, h, c) = (image.width, image.height, image.channels);
    let (pw, ph) = (w.div_ceil(m) * m, h.div_ceil(m) * m);
    let padded = reflect_pad(image, pw, ph);
    let mut out = vec![0f32; w * h];
    for ty in (0..h).step_by(core) {
        for tx in (0..w).step_by(core) {
            let (y0, y1) = (ty.saturating_sub(margin), (ty + core + margin).min(ph));
            let (x0, x1) = (tx.saturating_sub(margin), (tx + core + margin).min(pw));
            let (rw, rh) = (x1 - x0, y1 - y0);
            let mut region = Vec::with_capacity(c * rw * rh);
            for ch in 0..c {
                for y in y0..y1 {
                    let row = (ch * ph + y) * pw;
                    region.extend_from_slice(&padded[row + x0..row + x1]);
                }
            }
            let values = predict(&region, [1, c, rh, rw])?;
            if values.len() != rw * rh {
                return Err(Error::invalid(
                    "predictor output",
                    format!("{} values for a {rw}x{rh} tile", values.len()),
                ));
            }
            for y in ty..(ty + core).min(h) {
                let src = (y - y0) * rw + (tx - x0);
                let n = (tx + core).min(w) - tx;
                out[y * w + tx..y * w + tx + n].copy_from_slice(&values[src..src + n]);
            }
        }
    }
    Ok(Image::new(w, h, 1, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A predictor whose output pixel is the mean of its 3x3 neighbourhood
    /// (zero outside the input), as a convolution sees it: tiles must give
    /// the single pass's output once the margin covers the radius.
    fn box3(values: &[f32], [n, c, h, w]: [usize; 4]) -> Result<Vec<f32>> {
        assert_eq!(n, 1);
        let mut out = vec![0.0; h * w];
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0.0;
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            sum += values[(c - 1) * h * w + yy as usize * w + xx as usize];
                        }
                    }
                }
                out[y * w + x] = sum / 9.0;
            }
        }
        Ok(out)
    }

    #[test]
    fn tiles_with_a_margin_give_the_single_pass() {
        let data = (0..37 * 29 * 2).map(|i| (i as f32 * 0.61).sin()).collect();
        let image = Image::new(37, 29, 2, data);
        let whole = single_pass(&image, 4, &mut box3).unwrap();
        for (core, margin) in [(8, 4), (4, 4), (12, 8), (64, 0)] {
            let tiled = tiled_single_pass(&image, 4, core, margin, &mut box3).unwrap();
            assert_eq!(tiled, whole, "core {core}, margin {margin}");
        }
        // Without a margin the tile edges show.
        let cut = tiled_single_pass(&image, 4, 8, 0, &mut box3).unwrap();
        assert_ne!(cut, whole);
        assert!(tiled_single_pass(&image, 4, 6, 4, &mut box3).is_err());
    }

    #[test]
    fn padding_keeps_the_image_in_the_corner() {
        let img = Image::new(3, 2, 1, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let padded = reflect_pad(&img, 4, 4);
        // Rows 0,1 then reflected rows 0 (y=2 -> 0), 1 (y=3 -> 1); column 3 -> 1.
        assert_eq!(
            padded,
            vec![
                1.0, 2.0, 3.0, 2.0, 4.0, 5.0, 6.0, 5.0, 1.0, 2.0, 3.0, 2.0, 4.0, 5.0, 6.0, 5.0
            ]
        );
    }
}
