//! Loaders on tiny generated files: the CHASE_DB1 layout (no copy in
//! ../shared), user folders, NIfTI, and every kind of bad input the issue
//! lists — each must give an error naming the file, never a panic.

use std::path::Path;

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};
use r2unet::Error;
use r2unet::data::io::{read_image, read_mask};
use r2unet::data::{DatasetKind, FovSource, LabelRule, LoadOptions, ReadLimits, Split};

/// A fundus-like RGB image: a bright disc on black.
fn disc_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
        if (dx * dx + dy * dy).sqrt() < 0.45 * w.min(h) as f32 {
            Rgb([200, 90, 40])
        } else {
            Rgb([2, 1, 0])
        }
    })
}

/// A label with a horizontal "vessel", values 0/`on`.
fn label_image(w: u32, h: u32, on: u8) -> GrayImage {
    GrayImage::from_fn(w, h, |_, y| Luma([if y == h / 2 { on } else { 0 }]))
}

fn make_chase(dir: &Path, split_folders: bool) {
    let (images, manual) = if split_folders {
        (dir.join("images"), dir.join("manual"))
    } else {
        (dir.to_path_buf(), dir.to_path_buf())
    };
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&manual).unwrap();
    for n in 1..=14 {
        for eye in ["L", "R"] {
            let id = format!("Image_{n:02}{eye}");
            disc_image(40, 32)
                .save(images.join(format!("{id}.jpg")))
                .unwrap();
            // 1-bit PNGs with values 0/1, as CHASE_DB1 ships them.
            for tag in ["1stHO", "2ndHO"] {
                let label = label_image(40, 32, 1);
                let path = manual.join(format!("{id}_{tag}.png"));
                let file = std::fs::File::create(&path).unwrap();
                let mut enc = png::Encoder::new(file, 40, 32);
                enc.set_color(png::ColorType::Grayscale);
                enc.set_depth(png::BitDepth::One);
                let bits: Vec<u8> = label
                    .rows()
                    .flat_map(|row| {
                        let px: Vec<u8> = row.map(|p| p.0[0]).collect();
                        px.chunks(8)
                            .map(|c| {
                                c.iter()
                                    .enumerate()
                                    .fold(0u8, |acc, (i, &v)| acc | (v << (7 - i)))
                            })
                            .collect::<Vec<u8>>()
                    })
                    .collect();
                enc.write_header().unwrap().write_image_data(&bits).unwrap();
            }
        }
    }
}

#[test]
fn chase_layout_splits_20_and_8_flat_or_in_subfolders() {
    for split_folders in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        make_chase(dir.path(), split_folders);
        let opts = LoadOptions::default();
        let train = DatasetKind::Chase
            .entries(dir.path(), Split::Train, &opts)
            .unwrap();
        let test = DatasetKind::Chase
            .entries(dir.path(), Split::Test, &opts)
            .unwrap();
        assert_eq!((train.len(), test.len()), (20, 8));
        assert_eq!(train[0].id, "Image_01L");
        assert_eq!(test[0].id, "Image_11L");
        let s = &test[0].load(&opts).unwrap()[0];
        assert_eq!(s.fov_source, FovSource::Computed);
        assert_eq!(s.label.count(), 40, "one labelled row of the 1-bit PNG");
        assert!(s.fov.count() > 0);
    }
}

fn make_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    // A 16-bit grey image and a mask with a `_mask` suffix.
    let img: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(16, 8, |x, _| Luma([x as u16 * 4096]));
    img.save(dir.join("images/case1.png")).unwrap();
    label_image(16, 8, 255)
        .save(dir.join("masks/case1_mask.png"))
        .unwrap();
    disc_image(16, 8)
        .save(dir.join("images/case2.tif"))
        .unwrap();
    label_image(16, 8, 1)
        .save(dir.join("masks/case2.png"))
        .unwrap();
}

#[test]
fn user_folder_pairs_by_stem_and_reads_16_bit() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let samples = DatasetKind::Folder
        .load(dir.path(), Split::All, &LoadOptions::default())
        .unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].id, "case1");
    // 15 * 4096 / 65535 = 0.9375 (16-bit scaled to [0, 1]).
    let max = samples[0].image.data.iter().copied().fold(0.0, f32::max);
    assert!((max - 0.9375).abs() < 1e-4, "{max}");
    assert_eq!(samples[0].label.count(), 16);
    assert_eq!(samples[1].image.channels, 3);
    assert_eq!(samples[1].fov_source, FovSource::WholeImage);
    // A flat folder has no test split.
    let err = DatasetKind::Folder
        .entries(dir.path(), Split::Test, &LoadOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("the split `all`"), "{err}");
}

fn expect_error(result: Result<Vec<r2unet::data::Sample>, Error>, names: &str, says: &str) {
    let err = result.expect_err("bad input must be an error");
    let text = err.to_string();
    assert!(
        text.contains(names) && text.contains(says),
        "`{text}` should name {names} and say {says}"
    );
}

fn load_folder(dir: &Path, opts: &LoadOptions) -> Result<Vec<r2unet::data::Sample>, Error> {
    DatasetKind::Folder.load(dir, Split::All, opts)
}

#[test]
fn bad_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    expect_error(
        load_folder(&missing, &LoadOptions::default()),
        "nowhere",
        "not found",
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("images")).unwrap();
    std::fs::create_dir_all(empty.join("masks")).unwrap();
    expect_error(
        load_folder(&empty, &LoadOptions::default()),
        "empty",
        "no all images",
    );

    let orphan = dir.path().join("orphan");
    make_folder(&orphan);
    std::fs::remove_file(orphan.join("masks/case2.png")).unwrap();
    expect_error(
        load_folder(&orphan, &LoadOptions::default()),
        "case2.tif",
        "has no mask",
    );

    let odd = dir.path().join("odd");
    make_folder(&odd);
    std::fs::write(odd.join("images/case3.webp"), b"RIFF").unwrap();
    expect_error(
        load_folder(&odd, &LoadOptions::default()),
        "case3.webp",
        "unsupported image format",
    );

    expect_error(
        DatasetKind::Drive.load(dir.path(), Split::Train, &LoadOptions::default()),
        "training",
        "not found",
    );
}

#[test]
fn a_label_of_another_size_names_both_files_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    label_image(15, 8, 1)
        .save(dir.path().join("masks/case2.png"))
        .unwrap();
    expect_error(
        load_folder(dir.path(), &LoadOptions::default()),
        "case2.png",
        "15x8",
    );
    let err = load_folder(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("case2.tif") && err.contains("16x8"), "{err}");
}

#[test]
fn non_binary_labels_are_refused_unless_a_threshold_is_given() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    GrayImage::from_fn(16, 8, |x, _| Luma([(x * 16) as u8]))
        .save(dir.path().join("masks/case2.png"))
        .unwrap();
    expect_error(
        load_folder(dir.path(), &LoadOptions::default()),
        "case2.png",
        "0, 16, 32",
    );
    let opts = LoadOptions {
        label_rule: LabelRule::Threshold(0.5),
        ..LoadOptions::default()
    };
    let samples = load_folder(dir.path(), &opts).unwrap();
    // Values 0..240 step 16: above 127.5 are 128..240, i.e. x = 8..15, 8 columns x 8 rows.
    assert_eq!(samples[1].label.count(), 64);
}

#[test]
fn truncated_corrupt_and_oversized_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ReadLimits::default();
    let good = dir.path().join("good.png");
    disc_image(64, 64).save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_image(&truncated, limits).unwrap_err();
    assert!(
        matches!(err, Error::Image { .. }) && err.to_string().contains("truncated.png"),
        "{err}"
    );

    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"this is not a JPEG").unwrap();
    let err = read_image(&corrupt, limits).unwrap_err();
    assert!(err.to_string().contains("corrupt.jpg"), "{err}");

    // A PGM header claiming 100000x100000 pixels with almost no data: refused
    // from the header, before any allocation.
    let huge = dir.path().join("huge.pgm");
    std::fs::write(&huge, b"P5\n100000 100000\n255\n\x00\x00\x00\x00").unwrap();
    let err = read_mask(&huge, limits, LabelRule::Binary).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                pixels: 10_000_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("huge.pgm"));

    let missing = dir.path().join("missing.png");
    assert!(
        read_image(&missing, limits)
            .unwrap_err()
            .to_string()
            .contains("missing.png")
    );
}

/// A minimal NIfTI-1 file (348-byte header, 4-byte extension flag, float32 data).
fn write_nifti(path: &Path, dims: [u16; 3], values: &[f32]) {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let dim: [i16; 8] = [
        3,
        dims[0] as i16,
        dims[1] as i16,
        dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dim.iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&16i16.to_le_bytes()); // datatype FLOAT32
    h[72..74].copy_from_slice(&32i16.to_le_bytes()); // bitpix
    for i in 0..8 {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes()); // pixdim
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes()); // vox_offset
    h[112..116].copy_from_slice(&1f32.to_le_bytes()); // scl_slope
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, h).unwrap();
}

#[test]
fn nifti_volumes_are_sliced_along_the_chosen_axis() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    std::fs::create_dir_all(dir.path().join("labels")).unwrap();
    let dims = [4u16, 3, 2];
    let n = 4 * 3 * 2;
    let image: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let label: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
    write_nifti(&dir.path().join("images/vol.nii"), dims, &image);
    write_nifti(&dir.path().join("labels/vol_seg.nii"), dims, &label);

    let samples = DatasetKind::Nifti
        .load(dir.path(), Split::All, &LoadOptions::default())
        .unwrap();
    assert_eq!(samples.len(), 2, "two axial slices");
    assert_eq!((samples[0].image.width, samples[0].image.height), (4, 3));
    assert_eq!(samples[0].id, "vol:0");
    // Min-max over the volume: voxel 0 → 0, voxel 23 → 1; slice 1 starts at voxel 12.
    assert_eq!(samples[1].image.data[0], 12.0 / 23.0);
    assert_eq!(samples[0].label.count(), 6);

    let sagittal = LoadOptions {
        nifti_axis: 0,
        ..LoadOptions::default()
    };
    let samples = DatasetKind::Nifti
        .load(dir.path(), Split::All, &sagittal)
        .unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!((samples[0].image.width, samples[0].image.height), (3, 2));

    // A truncated volume is an error naming it.
    let bytes = std::fs::read(dir.path().join("images/vol.nii")).unwrap();
    std::fs::write(dir.path().join("images/vol.nii"), &bytes[..360]).unwrap();
    let err = DatasetKind::Nifti
        .load(dir.path(), Split::All, &LoadOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("vol.nii"), "{err}");
}

/// Loads a committed `nifti_reader` crash input the way the fuzz target does
/// (byte 0 picks `.nii.gz` and the slicing axis) and returns the error.
fn load_fuzz_nifti(fixture: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(super::fixtures().join("fuzz").join(fixture)).unwrap();
    let path = dir.path().join("vol.nii.gz");
    std::fs::write(&path, &bytes[1..]).unwrap();
    let opts = LoadOptions {
        nifti_axis: usize::from(bytes[0] / 2 % 3),
        ..LoadOptions::default()
    };
    let err = r2unet::data::nifti::load_volume("v", &path, &path, &opts)
        .expect_err("a malformed volume is refused");
    assert!(err.to_string().contains("vol.nii.gz"), "{err}");
    err
}

#[test]
fn fuzz_found_nifti_with_fewer_voxels_than_its_header_is_an_error() {
    // `fuzz/artifacts/nifti_reader/crash-37134b04…`: a gzip NIfTI whose data
    // holds 6 values for larger dimensions; it used to panic with an index
    // out of bounds while slicing.
    let err = load_fuzz_nifti("nifti_short_data.bin");
    assert!(err.to_string().contains("voxel values"), "{err}");
}

#[test]
fn fuzz_found_nifti_data_that_panics_the_nifti_crate_is_an_error() {
    // `fuzz/artifacts/nifti_reader/crash-229cd27e…`: a gzip NIfTI whose data
    // bytes do not fill whole voxels; nifti 0.18 panics converting them
    // ("mid > len"); the panic is caught and reported as an error.
    let err = load_fuzz_nifti("nifti_header_panic.bin");
    assert!(err.to_string().contains("malformed NIfTI"), "{err}");
}
