//! Pictures of results, as PNG bytes: 16-bit probability maps, binary masks,
//! and overlays on the input image (prediction alone, or true positives,
//! false positives and false negatives against a ground truth).

use std::io::Cursor;

use image::{ImageBuffer, ImageFormat, Luma, Rgb, RgbImage};

use crate::data::Image;
use crate::error::{Error, Result};

/// Overlay colour of true positives (green).
pub const TP: [u8; 3] = [40, 200, 40];
/// Overlay colour of false positives (red).
pub const FP: [u8; 3] = [230, 40, 40];
/// Overlay colour of false negatives (blue).
pub const FN: [u8; 3] = [50, 110, 255];

fn encode<P: image::PixelWithColorType>(
    buffer: &ImageBuffer<P, Vec<P::Subpixel>>,
) -> Result<Vec<u8>>
where
    [P::Subpixel]: image::EncodableLayout,
{
    let mut png = Vec::new();
    buffer
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| Error::invalid("PNG encoding", e.to_string()))?;
    Ok(png)
}

fn check_len(len: usize, width: usize, height: usize, what: &str) -> Result<()> {
    if len == width * height {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!("{len} values for a {width}x{height} picture"),
        ))
    }
}

/// A probability map (`[0, 1]`, row-major) as a 16-bit grey PNG: value `p`
/// is stored as `round(p * 65535)`.
///
/// # Errors
///
/// [`Error::Invalid`] if `probs` is not `width * height` long or encoding fails.
pub fn probability_png(probs: &[f32], width: usize, height: usize) -> Result<Vec<u8>> {
    check_len(probs.len(), width, height, "probability map")?;
    let values = probs
        .iter()
        .map(|&p| (p.clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    let buffer = ImageBuffer::<Luma<u16>, Vec<u16>>::from_raw(width as u32, height as u32, values)
        .expect("length checked");
    encode(&buffer)
}

/// A 0/1 mask as an 8-bit PNG, foreground 255.
///
/// # Errors
///
/// [`Error::Invalid`] if `mask` is not `width * height` long or encoding fails.
pub fn mask_png(mask: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    check_len(mask.len(), width, height, "mask")?;
    let values = mask.iter().map(|&m| if m != 0 { 255 } else { 0 }).collect();
    let buffer = ImageBuffer::<Luma<u8>, Vec<u8>>::from_raw(width as u32, height as u32, values)
        .expect("length checked");
    encode(&buffer)
}

/// The image as a dimmed RGB background: grey images are repeated, RGB kept,
/// other channel counts show channel 0; values clamped to `[0, 1]`.
fn background(image: &Image, dim: f32) -> RgbImage {
    let (w, h, c) = (image.width, image.height, image.channels);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = (y as usize * w + x as usize) * c;
        let px = |k: usize| (image.data[at + k].clamp(0.0, 1.0) * 255.0 * dim) as u8;
        if c == 3 {
            Rgb([px(0), px(1), px(2)])
        } else {
            Rgb([px(0); 3])
        }
    })
}

/// The image itself as an 8-bit RGB picture (grey repeated), for reports.
pub fn photo(image: &Image) -> RgbImage {
    background(image, 1.0)
}

fn blend(pixel: &mut Rgb<u8>, colour: [u8; 3], alpha: f32) {
    for (p, c) in pixel.0.iter_mut().zip(colour) {
        *p = (f32::from(*p) * (1.0 - alpha) + f32::from(c) * alpha).round() as u8;
    }
}

/// The predicted foreground (green) over the image; outside `fov` darkened.
///
/// # Panics
///
/// If `predicted` or `fov` is not the image's size.
pub fn mask_overlay(image: &Image, predicted: &[u8], fov: Option<&[u8]>) -> RgbImage {
    let mut out = background(image, 0.8);
    assert_eq!(predicted.len(), image.width * image.height, "mask size");
    for (i, px) in out.pixels_mut().enumerate() {
        if fov.is_some_and(|f| f[i] == 0) {
            blend(px, [0, 0, 0], 0.5);
        } else if predicted[i] != 0 {
            blend(px, TP, 0.7);
        }
    }
    out
}

/// Errors against the ground truth over the image: true positives green,
/// false positives red, false negatives blue; outside `fov` darkened.
///
/// # Panics
///
/// If `predicted`, `label` or `fov` is not the image's size.
pub fn error_overlay(image: &Image, predicted: &[u8], label: &[u8], fov: &[u8]) -> RgbImage {
    let mut out = background(image, 0.6);
    assert_eq!(predicted.len(), image.width * image.height, "mask size");
    assert_eq!(label.len(), predicted.len(), "label size");
    for (i, px) in out.pixels_mut().enumerate() {
        if fov[i] == 0 {
            blend(px, [0, 0, 0], 0.5);
            continue;
        }
        match (predicted[i] != 0, label[i] != 0) {
            (true, true) => blend(px, TP, 0.8),
            (true, false) => blend(px, FP, 0.8),
            (false, true) => blend(px, FN, 0.8),
            (false, false) => {}
        }
    }
    out
}

/// A PNG picture (as [`rgb_png`] writes) scaled down so that its longer side
/// is at most `max_side` (kept as is when already smaller), as PNG bytes;
/// for example pages that should stay small in the repository.
///
/// # Errors
///
/// [`Error::Invalid`] if `png` does not decode, or encoding fails.
pub fn thumbnail_png(png: &[u8], max_side: u32) -> Result<Vec<u8>> {
    let picture = image::load_from_memory_with_format(png, ImageFormat::Png)
        .map_err(|e| Error::invalid("PNG decoding", e.to_string()))?
        .to_rgb8();
    let (w, h) = picture.dimensions();
    let longer = w.max(h);
    if longer <= max_side || max_side == 0 {
        return encode(&picture);
    }
    let scale = f64::from(max_side) / f64::from(longer);
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    encode(&image::imageops::resize(
        &picture,
        nw,
        nh,
        image::imageops::FilterType::Triangle,
    ))
}

/// An RGB picture as PNG bytes.
///
/// # Errors
///
/// [`Error::Invalid`] if encoding fails.
pub fn rgb_png(picture: &RgbImage) -> Result<Vec<u8>> {
    encode(picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_png_round_trips_at_16_bits() {
        let probs = [0.0, 0.25, 0.5, 1.0, 1.5, -1.0];
        let png = probability_png(&probs, 3, 2).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().into_luma16();
        let back: Vec<u16> = decoded.into_raw();
        assert_eq!(back, vec![0, 16384, 32768, 65535, 65535, 0]);
        assert!(probability_png(&probs, 2, 2).is_err());
    }

    #[test]
    fn mask_png_is_0_and_255() {
        let png = mask_png(&[0, 1, 1, 0], 2, 2).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().into_luma8();
        assert_eq!(decoded.into_raw(), vec![0, 255, 255, 0]);
    }

    #[test]
    fn overlay_colours_mark_each_outcome() {
        let image = Image::filled(5, 1, 1, 0.0);
        // tp, fp, fn, tn, outside the FOV.
        let out = error_overlay(&image, &[1, 1, 0, 0, 1], &[1, 0, 1, 0, 1], &[1, 1, 1, 1, 0]);
        let px: Vec<[u8; 3]> = out.pixels().map(|p| p.0).collect();
        let tint = |c: [u8; 3]| c.map(|v| (f32::from(v) * 0.8).round() as u8);
        assert_eq!(px, vec![tint(TP), tint(FP), tint(FN), [0; 3], [0; 3]]);
        let out = mask_overlay(&Image::filled(2, 1, 3, 1.0), &[1, 0], None);
        assert_eq!(out.get_pixel(1, 0).0, [204; 3]);
        assert_ne!(out.get_pixel(0, 0).0, [204; 3]);
    }

    #[test]
    fn thumbnails_keep_the_aspect_and_never_enlarge() {
        let picture = RgbImage::from_pixel(600, 300, Rgb([10, 200, 30]));
        let png = rgb_png(&picture).unwrap();
        let small = image::load_from_memory(&thumbnail_png(&png, 200).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(small.dimensions(), (200, 100));
        assert_eq!(small.get_pixel(50, 50).0, [10, 200, 30]);
        let same = image::load_from_memory(&thumbnail_png(&png, 1000).unwrap()).unwrap();
        assert_eq!((same.width(), same.height()), (600, 300));
        assert!(thumbnail_png(b"not a png", 100).is_err());
    }
}
