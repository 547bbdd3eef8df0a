//! Reading images, masks and CT slices from files, safely: the header is read
//! and the pixel count checked before anything is decoded, gzip-compressed
//! files (`.ppm.gz`, STARE) are inflated with a size cap, and every failure
//! names the file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};

use super::image::{Image, Mask};
use crate::error::{Error, Result};

/// Limits on what a reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLimits {
    /// Largest accepted `width * height`; larger headers are refused before decoding.
    pub max_pixels: u64,
}

impl Default for ReadLimits {
    /// 64 megapixels: four times a 4000x4000 fundus photograph.
    fn default() -> Self {
        Self {
            max_pixels: 64_000_000,
        }
    }
}

/// How a label image becomes a 0/1 mask.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelRule {
    /// At most two values, the higher one foreground (0/1, 0/255, palette
    /// black/white); a single value is foreground if above half scale. More values: an error.
    #[default]
    Binary,
    /// Foreground where the value exceeds this fraction of the type's full scale.
    Threshold(f32),
}

fn image_error(path: &Path, reason: impl ToString) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn check_size(path: &Path, width: u64, height: u64, limits: ReadLimits) -> Result<()> {
    let pixels = width.saturating_mul(height);
    if pixels > limits.max_pixels {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(image_error(path, "image has no pixels"));
    }
    Ok(())
}

/// The bytes of `path`, inflated when it ends in `.gz` (at most what an image
/// within `limits` can need, so a gzip bomb is refused).
fn read_bytes(path: &Path, limits: ReadLimits) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let is_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut bytes = Vec::new();
    if is_gz {
        let cap = limits.max_pixels.saturating_mul(8).saturating_add(1 << 20);
        let mut inflater = flate2::read::GzDecoder::new(BufReader::new(file)).take(cap + 1);
        inflater
            .read_to_end(&mut bytes)
            .map_err(|e| image_error(path, format!("gzip: {e}")))?;
        if bytes.len() as u64 > cap {
            return Err(image_error(
                path,
                "inflates to more than an image within the pixel limit",
            ));
        }
    } else {
        BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(bytes)
}

/// Whether `bytes` start like a BigTIFF (version 43), which the format
/// guess does not recognise but the TIFF decoder reads.
fn is_bigtiff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"II\x2b\x00") || bytes.starts_with(b"MM\x00\x2b")
}

/// Whether JPEG `bytes` lack their end-of-image marker (trailing zero
/// padding ignored): the file was cut short, and the decoder fills in what
/// is missing without an error.
fn jpeg_truncated(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    !bytes[..end].ends_with(&[0xff, 0xd9])
}

/// Decodes any supported format (PNG, JPEG, GIF, BMP, TIFF including
/// BigTIFF, PPM/PGM, also gzip-compressed), checking the header against
/// `limits` first, and turns it as its EXIF orientation says (as viewers show
/// it). Returns warnings about data the decoder accepted but should not have
/// (a truncated JPEG).
fn decode(path: &Path, limits: ReadLimits) -> Result<(DynamicImage, Vec<String>)> {
    let bytes = read_bytes(path, limits)?;
    if bytes.is_empty() {
        return Err(image_error(path, "the file is empty (0 bytes)"));
    }
    let reader = || -> Result<ImageReader<Cursor<&Vec<u8>>>> {
        if is_bigtiff(&bytes) {
            return Ok(ImageReader::with_format(
                Cursor::new(&bytes),
                ImageFormat::Tiff,
            ));
        }
        ImageReader::new(Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|e| image_error(path, e))
    };
    let first = reader()?;
    let Some(format) = first.format() else {
        return Err(image_error(
            path,
            "unsupported or unrecognised format (expected PNG, JPEG, GIF, BMP, TIFF, PPM/PGM, optionally .gz)",
        ));
    };
    let (w, h) = first.into_dimensions().map_err(|e| image_error(path, e))?;
    check_size(path, w as u64, h as u64, limits)?;
    let mut decoder = reader()?.into_decoder().map_err(|e| image_error(path, e))?;
    let mut caps = Limits::default();
    caps.max_alloc = Some(limits.max_pixels.saturating_mul(16).max(1 << 24));
    decoder.set_limits(caps).map_err(|e| image_error(path, e))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, e))?;
    image.apply_orientation(orientation);
    let mut warnings = Vec::new();
    if format == ImageFormat::Jpeg && jpeg_truncated(&bytes) {
        warnings.push(format!(
            "{}: the JPEG data ends before its end-of-image marker (a truncated file?); \
             the missing part of the picture was filled in by the decoder",
            path.display()
        ));
    }
    Ok((image, warnings))
}

/// The divisor that maps 16-bit samples to `[0, 1]`: the full scale of the
/// smallest of 8, 10, 12, 14 or 16 bits that holds `max`. Cameras and
/// scanners store 10-, 12- and 14-bit data in 16-bit containers (a 12-bit
/// picture peaks at 4,095, not 65,535); scaled by the container alone such a
/// picture would read 16 times darker than the same picture at full scale.
pub fn sixteen_bit_scale(max: u16) -> f32 {
    [8u32, 10, 12, 14, 16]
        .into_iter()
        .map(|bits| ((1u32 << bits) - 1) as f32)
        .find(|&full| f32::from(max) <= full)
        .unwrap_or(65535.0)
}

/// Reads a photograph (or any 8/16-bit image) as grey (1 channel) or RGB (3),
/// scaled to `[0, 1]`; alpha is dropped.
///
/// # Errors
///
/// [`Error::Io`], [`Error::Image`] or [`Error::TooLarge`] naming `path`.
pub fn read_image(path: &Path, limits: ReadLimits) -> Result<Image> {
    read_image_checked(path, limits).map(|(image, _)| image)
}

/// [`read_image`], also returning warnings about the file that did not stop
/// it from being read (a truncated JPEG), each naming the file.
///
/// # Errors
///
/// As [`read_image`].
pub fn read_image_checked(path: &Path, limits: ReadLimits) -> Result<(Image, Vec<String>)> {
    let (img, warnings) = decode(path, limits)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let color = img.color();
    let channels = if color.has_color() { 3 } else { 1 };
    let sixteen_bit = color.bytes_per_pixel() == 2 * color.channel_count();
    let data = if sixteen_bit {
        // Scaled by the bit depth the data uses, not the container's.
        let raw = if channels == 3 {
            img.to_rgb16().into_raw()
        } else {
            img.to_luma16().into_raw()
        };
        let full = sixteen_bit_scale(raw.iter().copied().max().unwrap_or(0));
        raw.into_iter().map(|v| f32::from(v) / full).collect()
    } else if channels == 3 {
        img.to_rgb32f().into_raw()
    } else {
        img.to_luma32f().into_raw()
    };
    Ok((Image::new(w, h, channels, data), warnings))
}

/// Reads a label or field-of-view mask as 0/1 (colour masks are converted to grey).
///
/// # Errors
///
/// As [`read_image`], and [`Error::NonBinaryLabel`] listing the values when
/// `rule` is [`LabelRule::Binary`] and the file holds more than two values.
pub fn read_mask(path: &Path, limits: ReadLimits, rule: LabelRule) -> Result<Mask> {
    let (img, _) = decode(path, limits)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let eight_bit = img.color().bytes_per_pixel() == img.color().channel_count();
    let (values, full_scale): (Vec<u16>, f32) = if eight_bit {
        let v = img
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(u16::from)
            .collect();
        (v, 255.0)
    } else {
        (img.to_luma16().into_raw(), 65535.0)
    };
    let data = binarize(path, &values, full_scale, rule)?;
    Ok(Mask::new(w, h, data))
}

/// Turns label values into 0/1 under `rule`.
fn binarize(path: &Path, values: &[u16], full_scale: f32, rule: LabelRule) -> Result<Vec<u8>> {
    match rule {
        LabelRule::Threshold(t) => {
            let cut = t * full_scale;
            Ok(values.iter().map(|&v| u8::from(v as f32 > cut)).collect())
        }
        LabelRule::Binary => {
            // Two values are background and foreground whatever they are: palette
            // GIFs (DRIVE 2nd_manual) decode to near-black/near-white, not 0/255.
            let distinct: BTreeSet<u16> = values.iter().copied().collect();
            let foreground = match distinct.len() {
                1 => distinct
                    .first()
                    .filter(|&&v| v as f32 > full_scale / 2.0)
                    .copied(),
                2 => distinct.last().copied(),
                _ => {
                    let shown: Vec<String> = distinct.iter().take(8).map(u16::to_string).collect();
                    let more = if distinct.len() > 8 { ", ..." } else { "" };
                    return Err(Error::NonBinaryLabel {
                        path: path.to_path_buf(),
                        values: format!(
                            "{{{}{more}}} ({} distinct)",
                            shown.join(", "),
                            distinct.len()
                        ),
                    });
                }
            };
            Ok(values
                .iter()
                .map(|&v| u8::from(Some(v) == foreground))
                .collect())
        }
    }
}

/// Whether `path` names a TIFF (`.tif`, `.tiff`), the format CT slices keep
/// their raw values in.
pub fn is_tiff(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

/// Reads a CT slice keeping its raw values (Hounsfield-like for the LUNG set):
/// signed or unsigned integer or float TIFF through the `tiff` crate, other
/// formats through [`read_image`] rescaled to their integer range.
///
/// # Errors
///
/// [`Error::Io`], [`Error::Image`] or [`Error::TooLarge`] naming `path`.
pub fn read_ct(path: &Path, limits: ReadLimits) -> Result<Image> {
    if !is_tiff(path) {
        return read_image(path, limits);
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut decoder =
        tiff::decoder::Decoder::new(BufReader::new(file)).map_err(|e| image_error(path, e))?;
    let (w, h) = decoder.dimensions().map_err(|e| image_error(path, e))?;
    check_size(path, w as u64, h as u64, limits)?;
    let mut caps = tiff::decoder::Limits::default();
    caps.decoding_buffer_size = (limits.max_pixels as usize).saturating_mul(8);
    let mut decoder = decoder.with_limits(caps);
    let channels = match decoder.colortype().map_err(|e| image_error(path, e))? {
        tiff::ColorType::Gray(_) => 1,
        other => {
            return Err(image_error(
                path,
                format!("CT slice must be single-channel, found {other:?}"),
            ));
        }
    };
    use tiff::decoder::DecodingResult as D;
    let data: Vec<f32> = match decoder.read_image().map_err(|e| image_error(path, e))? {
        D::I16(v) => v.into_iter().map(f32::from).collect(),
        D::U16(v) => v.into_iter().map(f32::from).collect(),
        D::U8(v) => v.into_iter().map(f32::from).collect(),
        D::I8(v) => v.into_iter().map(f32::from).collect(),
        D::I32(v) => v.into_iter().map(|x| x as f32).collect(),
        D::U32(v) => v.into_iter().map(|x| x as f32).collect(),
        D::F32(v) => v,
        D::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        _ => return Err(image_error(path, "unsupported CT sample type")),
    };
    let (w, h) = (w as usize, h as usize);
    if data.len() != w * h * channels {
        return Err(image_error(
            path,
            format!("decoded {} values for a {w}x{h} slice", data.len()),
        ));
    }
    Ok(Image::new(w, h, channels, data))
}
