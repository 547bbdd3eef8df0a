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

#[cfg(test)]
mod tests {
    use super::*;

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
