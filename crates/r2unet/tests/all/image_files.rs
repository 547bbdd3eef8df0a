//! Images as common tools write them (issue "images as they come"): BigTIFF,
//! EXIF orientation, truncated and empty files, 12-bit data in 16-bit
//! containers, images too small for the fundus preprocessing.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageBuffer, Luma, Rgb, RgbImage};
use r2unet::data::Image;
use r2unet::data::io::{read_image, read_image_checked};
use r2unet::data::{Mask, ReadLimits};
use r2unet::device::DeviceChoice;
use r2unet::infer::Inference;
use r2unet::segment::{FovMode, TrainedModel};

const LIMITS: ReadLimits = ReadLimits {
    max_pixels: 64_000_000,
};

/// A picture whose pixels all differ, so a rotation cannot go unnoticed.
fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 20) as u8, (y * 30) as u8, 100]))
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode_image(image)
        .unwrap();
    bytes
}

/// A grey 8-bit BigTIFF (version 43, 8-byte offsets), written by hand as
/// `tifffile.imwrite(..., bigtiff=True)` lays it out: header, pixels, IFD.
fn bigtiff(w: u16, h: u16, pixels: &[u8]) -> Vec<u8> {
    let mut out = b"II\x2b\x00\x08\x00\x00\x00".to_vec();
    let strip = 16u64;
    let ifd = strip + pixels.len() as u64;
    out.extend(ifd.to_le_bytes());
    out.extend(pixels);
    // (tag, type, value): SHORT = 3, LONG8 = 16.
    let entries: [(u16, u16, u64); 8] = [
        (256, 3, u64::from(w)),
        (257, 3, u64::from(h)),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 16, strip),
        (278, 3, u64::from(h)),
        (279, 16, pixels.len() as u64),
    ];
    out.extend((entries.len() as u64).to_le_bytes());
    for (tag, kind, value) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(kind.to_le_bytes());
        out.extend(1u64.to_le_bytes());
        out.extend(value.to_le_bytes());
    }
    out.extend(0u64.to_le_bytes());
    out
}

/// `jpeg` with an EXIF APP1 segment saying `orientation` (6: rotate 90° clockwise).
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend(1u16.to_be_bytes());
    tiff.extend(0x0112u16.to_be_bytes());
    tiff.extend(3u16.to_be_bytes());
    tiff.extend(1u32.to_be_bytes());
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_be_bytes());
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xff, 0xe1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_bigtiff_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..6 * 4).map(|i| (i * 10) as u8).collect();
    let path = write(dir.path(), "big.tif", &bigtiff(6, 4, &pixels));
    let image = read_image(&path, LIMITS).unwrap();
    assert_eq!((image.width, image.height, image.channels), (6, 4, 1));
    let expected: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    assert_eq!(image.data, expected);
}

#[test]
fn exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let picture = gradient(8, 5);
    let plain = read_image(&write(dir.path(), "plain.jpg", &jpeg(&picture)), LIMITS).unwrap();
    let turned = with_exif_orientation(&jpeg(&picture), 6);
    let rotated = read_image(&write(dir.path(), "turned.jpg", &turned), LIMITS).unwrap();
    // Rotated 90° clockwise: 8x5 becomes 5x8, and stored (x, y) shows at (h-1-y, x).
    assert_eq!((rotated.width, rotated.height), (5, 8));
    for y in 0..5 {
        for x in 0..8 {
            for c in 0..3 {
                assert_eq!(plain.get(x, y, c), rotated.get(4 - y, x, c), "({x}, {y})");
            }
        }
    }
}

#[test]
fn a_truncated_jpeg_is_read_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let whole = jpeg(&gradient(64, 64));
    let path = write(dir.path(), "cut.jpg", &whole[..whole.len() / 2]);
    let (image, warnings) = read_image_checked(&path, LIMITS).unwrap();
    assert_eq!((image.width, image.height), (64, 64));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("cut.jpg") && warnings[0].contains("truncated"),
        "{}",
        warnings[0]
    );
    let full = write(dir.path(), "whole.jpg", &whole);
    assert!(read_image_checked(&full, LIMITS).unwrap().1.is_empty());
}

#[test]
fn an_empty_file_is_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nothing.png", b"");
    let err = read_image(&path, LIMITS).unwrap_err().to_string();
    assert!(
        err.contains("nothing.png") && err.contains("empty (0 bytes)"),
        "{err}"
    );
}

#[test]
fn twelve_bit_data_in_a_16_bit_file_reads_as_the_same_picture() {
    let dir = tempfile::tempdir().unwrap();
    let eight: Vec<u8> = (0..=255).collect();
    let as_png = |bits: u32| {
        let data: Vec<u16> = eight.iter().map(|&v| u16::from(v) << (bits - 8)).collect();
        let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_raw(16, 16, data).unwrap();
        let path = dir.path().join(format!("bits{bits}.png"));
        img.save(&path).unwrap();
        read_image(&path, LIMITS).unwrap()
    };
    let reference: Vec<f32> = eight.iter().map(|&v| f32::from(v) / 255.0).collect();
    for bits in [10, 12, 14, 16] {
        let read = as_png(bits);
        let worst = read
            .data
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // 255 << 4 = 4080 of 4095 at 12 bits: at most 1/256 below full scale.
        assert!(worst <= 1.0 / 256.0, "{bits} bits: {worst}");
    }
}

#[test]
fn images_too_small_for_the_fundus_preprocessing_say_so() {
    let device = DeviceChoice::Cpu.device().unwrap();
    let model = TrainedModel::shipped("drive", &device).unwrap();
    for (w, h) in [(1, 1), (500, 3)] {
        let image = Image::filled(w, h, 3, 0.5);
        let err = model
            .segment(
                "tiny",
                image,
                &FovMode::Whole,
                0.5,
                &Inference::default(),
                &device,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{w}x{h} pixels is too small")) && err.contains("at least 8x8"),
            "{err}"
        );
    }
    // 8x8 is accepted.
    let ok = model.segment(
        "small",
        Image::filled(8, 8, 3, 0.5),
        &FovMode::Mask(Mask::filled(8, 8, 1)),
        0.5,
        &Inference::default(),
        &device,
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn a_failed_png_of_an_image_keeps_its_other_pngs_from_before() {
    if !Path::new("/dev/full").exists() {
        println!("skipped: no /dev/full on this system to simulate a full disk");
        return;
    }
    let device = DeviceChoice::Cpu.device().unwrap();
    let model = TrainedModel::shipped("drive", &device).unwrap();
    // A line across the image, horizontal or vertical.
    let segment = |vertical: bool| {
        let data = (0..16 * 16 * 3)
            .map(|i| {
                let (y, x) = (i / 48, i / 3 % 16);
                if (if vertical { x } else { y }) == 8 {
                    0.1
                } else {
                    0.6
                }
            })
            .collect();
        model
            .segment(
                "x",
                Image::new(16, 16, 3, data),
                &FovMode::Whole,
                0.5,
                &Inference::default(),
                &device,
            )
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let before = segment(false).write_pngs(dir.path(), "x").unwrap();
    let bytes = |paths: &[std::path::PathBuf]| -> Vec<Vec<u8>> {
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let old = bytes(&before);
    // The overlay, the last of the three, meets a full disk: this thread's
    // temporary file for it is /dev/full.
    let temp = r2unet::atomic::temp_path(&before[2], "").unwrap();
    std::os::unix::fs::symlink("/dev/full", &temp).unwrap();
    let err = segment(true)
        .write_pngs(dir.path(), "x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x_overlay.png") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!(bytes(&before), old, "no PNG of the set replaced");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    let after = segment(true).write_pngs(dir.path(), "x").unwrap();
    assert_ne!(
        bytes(&after)[0],
        old[0],
        "a new image's PNGs once the disk has room"
    );
}
