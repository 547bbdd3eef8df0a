//! Preprocessing steps of the paper protocols, each a small pure function.
//!
//! The retina protocol of R2U-Net (Alom et al. 2018) is the classic
//! retina-unet one: grey conversion, dataset standardisation, CLAHE, gamma
//! correction ([`retina_protocol`]). CT slices are windowed
//! ([`window_hu`]); every dataset may be resized ([`resize_image`],
//! [`resize_mask`]).

use super::clahe::clahe;
use super::image::{Image, Mask};
use crate::error::{Error, Result};

/// Default CT window in Hounsfield units: lung tissue to soft tissue.
pub const HU_WINDOW: (f32, f32) = (-1000.0, 400.0);

/// CLAHE clip limit of the retina protocol (`cv2.createCLAHE(clipLimit=2.0)`).
pub const RETINA_CLAHE_CLIP: f32 = 2.0;
/// CLAHE tile grid of the retina protocol (`tileGridSize=(8, 8)`).
pub const RETINA_CLAHE_TILES: usize = 8;
/// Gamma of the retina protocol.
pub const RETINA_GAMMA: f32 = 1.2;

/// Grey image with ITU-R BT.601 weights `0.299 R + 0.587 G + 0.114 B`, as the
/// classic retina-unet `rgb2gray`.
///
/// A 1-channel image is returned unchanged; a 2-channel (grey + alpha) image
/// keeps its grey channel; a 4-channel (RGBA) image ignores its alpha.
pub fn luminance(image: &Image) -> Image {
    match image.channels {
        0..=2 => image.channel(0),
        c => {
            let data = image
                .data
                .chunks_exact(c)
                .map(|px| 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2])
                .collect();
            Image::new(image.width, image.height, 1, data)
        }
    }
}

/// The green channel of an RGB(A) image, the grey channel otherwise; vessels
/// have the most contrast there.
pub fn green(image: &Image) -> Image {
    image.channel(if image.channels >= 3 { 1 } else { 0 })
}

/// Dataset standardisation of the classic protocol: subtracts the mean and
/// divides by the standard deviation of all values of all `images`, then
/// rescales each image min–max to `[0, 1]` (a constant image becomes 0).
///
/// Returns `(mean, std)` so that test images can be given the training
/// statistics with [`apply_standardization`]. The std is the population one
/// (`numpy.std`); an empty slice gives `(0, 1)`.
pub fn standardize(images: &mut [Image]) -> (f32, f32) {
    let (mean, std) = mean_std(images);
    for image in images.iter_mut() {
        apply_standardization(image, mean, std);
    }
    (mean, std)
}

/// Applies given standardisation statistics, then the per-image min–max
/// rescale to `[0, 1]`. A zero or non-finite `std` divides by 1 instead.
pub fn apply_standardization(image: &mut Image, mean: f32, std: f32) {
    let std = if std.is_finite() && std > 0.0 {
        std
    } else {
        1.0
    };
    for v in &mut image.data {
        *v = (*v - mean) / std;
    }
    min_max(image);
}

/// Mean and population standard deviation over every value of every image,
/// accumulated in f64 so a whole dataset does not lose precision.
fn mean_std(images: &[Image]) -> (f32, f32) {
    let n: usize = images.iter().map(|im| im.data.len()).sum();
    if n == 0 {
        return (0.0, 1.0);
    }
    let values = || {
        images
            .iter()
            .flat_map(|im| im.data.iter().map(|&v| v as f64))
    };
    let mean = values().sum::<f64>() / n as f64;
    let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    (mean as f32, var.sqrt() as f32)
}

/// Rescales `image` linearly so that its minimum is 0 and maximum 1; a
/// constant image becomes all 0.
fn min_max(image: &mut Image) {
    let (lo, hi) = image
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    for v in &mut image.data {
        *v = if range > 0.0 { (*v - lo) / range } else { 0.0 };
    }
}

/// Gamma correction `out = in^(1 / gamma)`, inputs clamped to `[0, 1]` first
/// (the classic protocol applies `((i / 255)^(1 / gamma)) * 255` by table).
///
/// # Panics
///
/// If `gamma` is not finite and positive (a protocol constant, not user data).
pub fn gamma(image: &Image, gamma: f32) -> Image {
    assert!(
        gamma.is_finite() && gamma > 0.0,
        "gamma must be finite and positive, got {gamma}"
    );
    let inv = 1.0 / gamma;
    let data = image
        .data
        .iter()
        .map(|&v| v.clamp(0.0, 1.0).powf(inv))
        .collect();
    Image::new(image.width, image.height, image.channels, data)
}

/// The retina protocol on a training set, in place: [`luminance`],
/// [`standardize`] over the whole slice, [`clahe`] (clip 2, 8x8 tiles) and
/// [`gamma`] 1.2. Returns the standardisation `(mean, std)` for
/// [`retina_protocol_with`].
///
/// # Errors
///
/// [`Error::Invalid`] if an image is smaller than 8x8 (CLAHE's tile grid);
/// the images are then left partly processed.
pub fn retina_protocol(images: &mut [Image]) -> Result<(f32, f32)> {
    for image in images.iter_mut() {
        *image = luminance(image);
    }
    let stats = standardize(images);
    for image in images.iter_mut() {
        *image = clahe_gamma(image)?;
    }
    Ok(stats)
}

/// The retina protocol on one image with given statistics (a test image gets
/// the training set's `mean` and `std`).
///
/// # Errors
///
/// [`Error::Invalid`] if the image is smaller than 8x8.
pub fn retina_protocol_with(image: &Image, mean: f32, std: f32) -> Result<Image> {
    let mut grey = luminance(image);
    apply_standardization(&mut grey, mean, std);
    clahe_gamma(&grey)
}

fn clahe_gamma(image: &Image) -> Result<Image> {
    let equalised = clahe(
        image,
        RETINA_CLAHE_CLIP,
        RETINA_CLAHE_TILES,
        RETINA_CLAHE_TILES,
    )?;
    Ok(gamma(&equalised, RETINA_GAMMA))
}

/// CT windowing: clamps to `[lo, hi]` and maps linearly to `[0, 1]`.
///
/// # Errors
///
/// [`Error::Invalid`] if `lo >= hi` or either is not finite.
pub fn window_hu(image: &Image, lo: f32, hi: f32) -> Result<Image> {
    let mut data = image.data.clone();
    window_hu_in_place(&mut data, lo, hi)?;
    Ok(Image::new(image.width, image.height, image.channels, data))
}

/// [`window_hu`] on raw values, in place (no copy of a whole volume).
///
/// # Errors
///
/// As [`window_hu`].
pub fn window_hu_in_place(values: &mut [f32], lo: f32, hi: f32) -> Result<()> {
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::invalid(
            "CT window",
            format!("expected finite lo < hi, got [{lo}, {hi}]"),
        ));
    }
    values
        .iter_mut()
        .for_each(|v| *v = (v.clamp(lo, hi) - lo) / (hi - lo));
    Ok(())
}

/// Bilinear resize with half-pixel centres (as `cv2.resize` `INTER_LINEAR`),
/// any channel count; the same size returns a copy.
///
/// # Panics
///
/// If `image` is empty and the target is not.
pub fn resize_image(image: &Image, width: usize, height: usize) -> Image {
    let (w, h, c) = (image.width, image.height, image.channels);
    if width * height == 0 {
        return Image::new(width, height, c, Vec::new());
    }
    assert!(
        w * h > 0,
        "cannot resize an empty {w}x{h} image to {width}x{height}"
    );
    let xs: Vec<_> = (0..width).map(|x| linear_source(x, w, width)).collect();
    let mut data = Vec::with_capacity(width * height * c);
    for y in 0..height {
        let (y0, y1, fy) = linear_source(y, h, height);
        for &(x0, x1, fx) in &xs {
            for ch in 0..c {
                let at = |x: usize, y: usize| image.data[(y * w + x) * c + ch];
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                data.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Image::new(width, height, c, data)
}

/// Source pixels and weight of the second for output index `i`:
/// `s = (i + 0.5) * src / dst - 0.5`, clamped to the image.
fn linear_source(i: usize, src: usize, dst: usize) -> (usize, usize, f32) {
    let s = ((i as f32 + 0.5) * src as f32 / dst as f32 - 0.5).clamp(0.0, (src - 1) as f32);
    let s0 = s.floor() as usize;
    (s0, (s0 + 1).min(src - 1), s - s0 as f32)
}

/// Nearest-neighbour resize (pixel centres), so labels stay 0/1.
///
/// # Panics
///
/// If `mask` is empty and the target is not.
pub fn resize_mask(mask: &Mask, width: usize, height: usize) -> Mask {
    let (w, h) = (mask.width, mask.height);
    if width * height == 0 {
        return Mask::new(width, height, Vec::new());
    }
    assert!(
        w * h > 0,
        "cannot resize an empty {w}x{h} mask to {width}x{height}"
    );
    // Integer form of floor((i + 0.5) * src / dst), exact for any size.
    let nearest = |i: usize, src: usize, dst: usize| ((2 * i + 1) * src / (2 * dst)).min(src - 1);
    let xs: Vec<usize> = (0..width).map(|x| nearest(x, w, width)).collect();
    let data = (0..height)
        .flat_map(|y| {
            let row = nearest(y, h, height) * w;
            xs.iter().map(move |&x| mask.data[row + x])
        })
        .collect();
    Mask::new(width, height, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_uses_bt601_weights() {
        // 0.299 * 1 for pure red; equal channels keep their value.
        let rgb = Image::new(2, 1, 3, vec![1.0, 0.0, 0.0, 0.5, 0.5, 0.5]);
        let out = luminance(&rgb);
        assert_eq!(out.channels, 1);
        assert!((out.data[0] - 0.299).abs() < 1e-6);
        assert!((out.data[1] - 0.5).abs() < 1e-6);
        let one = Image::new(2, 1, 1, vec![0.1, 0.2]);
        assert_eq!(luminance(&one), one);
        assert_eq!(green(&rgb).data, vec![0.0, 0.5]);
    }

    #[test]
    fn standardize_uses_dataset_statistics_then_per_image_min_max() {
        // Values 0..8: mean 3.5, population variance
        // 2 * (3.5² + 2.5² + 1.5² + 0.5²) / 8 = 5.25.
        let mut images = [
            Image::new(4, 1, 1, vec![0.0, 1.0, 2.0, 3.0]),
            Image::new(4, 1, 1, vec![4.0, 5.0, 6.0, 7.0]),
            Image::filled(2, 2, 1, 3.5),
        ];
        let (mean, std) = standardize(&mut images[..2]);
        assert!((mean - 3.5).abs() < 1e-6);
        assert!((std - 5.25f32.sqrt()).abs() < 1e-6);
        for image in &images[..2] {
            for (v, e) in image.data.iter().zip([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]) {
                assert!((v - e).abs() < 1e-6, "{:?}", image.data);
            }
        }
        // A constant image becomes all 0.
        apply_standardization(&mut images[2], mean, std);
        assert_eq!(images[2].data, vec![0.0; 4]);
    }

    #[test]
    fn gamma_is_inverse_power() {
        // 0.25^(1/2) = 0.5; 0.5^(1/1.2) = exp(-ln 2 / 1.2) = 0.561231.
        let out = gamma(&Image::new(4, 1, 1, vec![0.0, 0.25, 1.0, 0.5]), 2.0);
        for (v, e) in out.data.iter().zip([0.0, 0.5, 1.0]) {
            assert!((v - e).abs() < 1e-6, "{:?}", out.data);
        }
        assert!((gamma(&Image::new(1, 1, 1, vec![0.5]), 1.2).data[0] - 0.561_231).abs() < 1e-5);
    }

    #[test]
    fn retina_protocol_matches_its_single_image_form() {
        let make = |seed: usize| {
            let data = (0..16 * 16 * 3)
                .map(|i| ((i * 37 + seed * 11) % 97) as f32 / 96.0)
                .collect();
            Image::new(16, 16, 3, data)
        };
        let originals = vec![make(1), make(2)];
        let mut images = originals.clone();
        let (mean, std) = retina_protocol(&mut images).unwrap();
        for (done, original) in images.iter().zip(&originals) {
            assert_eq!(done.channels, 1);
            assert!(done.data.iter().all(|v| (0.0..=1.0).contains(v)));
            assert_eq!(*done, retina_protocol_with(original, mean, std).unwrap());
        }
        assert!(retina_protocol(&mut [Image::filled(4, 4, 3, 0.5)]).is_err());
    }

    #[test]
    fn window_hu_clamps_and_scales() {
        // (v + 1000) / 1400: -300 -> 0.5; outside the window saturates.
        let image = Image::new(4, 1, 1, vec![-2000.0, -1000.0, -300.0, 1000.0]);
        let out = window_hu(&image, HU_WINDOW.0, HU_WINDOW.1).unwrap();
        assert_eq!(out.data, vec![0.0, 0.0, 0.5, 1.0]);
        assert!(window_hu(&image, 1.0, 1.0).is_err());
        assert!(window_hu(&image, f32::NEG_INFINITY, 1.0).is_err());
    }

    #[test]
    fn resize_same_size_is_identity() {
        let data = (0..5 * 3 * 3).map(|i| i as f32 / 44.0).collect();
        let image = Image::new(5, 3, 3, data);
        assert_eq!(resize_image(&image, 5, 3), image);
        let mask = Mask::new(3, 2, vec![0, 1, 1, 0, 0, 1]);
        assert_eq!(resize_mask(&mask, 3, 2), mask);
    }

    #[test]
    fn resize_bilinear_uses_half_pixel_centres() {
        // [0, 1] to width 4: sources -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1),
        // as cv2.resize INTER_LINEAR gives.
        let out = resize_image(&Image::new(2, 1, 1, vec![0.0, 1.0]), 4, 1);
        assert_eq!(out.data, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn resize_mask_nearest_repeats_pixels() {
        let mask = Mask::new(2, 2, vec![1, 0, 0, 1]);
        let expected = vec![
            1, 1, 0, 0, //
            1, 1, 0, 0, //
            0, 0, 1, 1, //
            0, 0, 1, 1,
        ];
        assert_eq!(resize_mask(&mask, 4, 4).data, expected);
    }
}
