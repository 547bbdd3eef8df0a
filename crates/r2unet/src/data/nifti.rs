//! NIfTI-1 volumes (`.nii`, `.nii.gz`) through the `nifti` crate: `images/`
//! and `labels/` (or `masks/`) paired by name, each volume sliced to 2D images
//! along a chosen axis. Split folders as for user folders (`train/`, `val/`,
//! `test/`, or flat for `all`). Slices keep their intensities, rescaled by the
//! header's `scl_slope`/`scl_inter`, then min-max normalised per volume to
//! [0, 1] (CT volumes in Hounsfield units are windowed instead: see `--hu-window`).

use std::path::Path;

use nifti::{NiftiObject, NiftiVolume, ReaderOptions};

use super::dataset::{
    Entry, FovSpec, ImageKind, LoadOptions, Split, file_name, layout, list_files, require_dir,
};
use super::folder::split_root;
use super::image::{Image, Mask};
use super::preprocess::window_hu;
use super::sample::{FovSource, Sample};
use crate::error::{Error, Result};

fn volume_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
}

/// The volume pairs of `split` under a NIfTI folder.
///
/// # Errors
///
/// A layout error naming the folder or the volume without a label.
pub fn entries(dir: &Path, split: Split) -> Result<Vec<Entry>> {
    let root = split_root(dir, split)?;
    let images = root.join("images");
    require_dir(&images, "images/ with .nii or .nii.gz volumes")?;
    let labels = ["labels", "masks"]
        .iter()
        .map(|s| root.join(s))
        .find(|p| p.is_dir())
        .ok_or_else(|| {
            layout(
                &root,
                "no labels/ (or masks/) folder with the label volumes",
            )
        })?;
    let label_files = list_files(&labels, |n| volume_stem(n).is_some())?;
    let mut out = Vec::new();
    for image in list_files(&images, |n| volume_stem(n).is_some())? {
        let stem = volume_stem(file_name(&image)).unwrap_or("").to_string();
        let label = label_files
            .iter()
            .find(|l| {
                let s = volume_stem(file_name(l)).unwrap_or("");
                s == stem
                    || ["_seg", "_label", "_mask", "_gt"]
                        .iter()
                        .any(|x| s == format!("{stem}{x}"))
            })
            .cloned()
            .ok_or_else(|| {
                layout(
                    &image,
                    format!("has no label volume in {}", labels.display()),
                )
            })?;
        out.push(Entry::new(
            stem,
            image,
            label,
            FovSpec::WholeImage,
            ImageKind::Volume,
        ));
    }
    Ok(out)
}

/// Runs a call into the `nifti` crate, turning a panic inside it into an
/// error naming the file. Found by fuzzing: nifti 0.18 panics ("mid > len",
/// in `into_nifti_typed_data`) when the data bytes do not fill whole voxels,
/// instead of returning an error.
fn guard<T>(path: &Path, read: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).map_err(|_| Error::Image {
        path: path.to_path_buf(),
        reason: "malformed NIfTI file: its data does not match its header".into(),
    })
}

/// A volume as `(dims [x, y, z], values in file order, x fastest)`.
fn read_volume(path: &Path, opts: &LoadOptions) -> Result<([usize; 3], Vec<f32>)> {
    let bad = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let header =
        guard(path, || nifti::NiftiHeader::from_file(path))?.map_err(|e| bad(e.to_string()))?;
    let dim = header.dim().map_err(|e| bad(e.to_string()))?;
    if dim.is_empty() || dim.len() > 4 || dim.get(3).is_some_and(|&t| t > 1) {
        return Err(bad(format!(
            "expected a 2D or 3D volume, found dimensions {dim:?}"
        )));
    }
    let d = [
        dim[0] as usize,
        *dim.get(1).unwrap_or(&1) as usize,
        *dim.get(2).unwrap_or(&1) as usize,
    ];
    let voxels = (d[0] * d[1]) as u64 * d[2] as u64;
    if voxels > opts.limits.max_pixels.saturating_mul(4) {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            width: d[0] as u64,
            height: (d[1] * d[2]) as u64,
            pixels: voxels,
            limit: opts.limits.max_pixels.saturating_mul(4),
        });
    }
    let object =
        guard(path, || ReaderOptions::new().read_file(path))?.map_err(|e| bad(e.to_string()))?;
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let volume = object.into_volume();
    if volume.dim().iter().map(|&v| v as usize).product::<usize>() != d.iter().product::<usize>() {
        return Err(bad("volume size does not match its header".into()));
    }
    let mut values: Vec<f32> =
        guard(path, || volume.into_nifti_typed_data::<f32>())?.map_err(|e| bad(e.to_string()))?;
    let expected = d[0] * d[1] * d[2];
    if values.len() != expected {
        // Found by fuzzing: a header whose dims promise more voxels than the
        // decoder returns (short or malformed data) once indexed past the end.
        return Err(bad(format!(
            "{} voxel values for dimensions {d:?} ({expected} expected): truncated or malformed data",
            values.len()
        )));
    }
    if slope != 0.0 && (slope != 1.0 || inter != 0.0) {
        values.iter_mut().for_each(|v| *v = *v * slope + inter);
    }
    Ok((d, values))
}

/// Slice `index` of a volume along `axis`, as a row-major 2D array `(w, h, values)`.
fn slice(d: [usize; 3], values: &[f32], axis: usize, index: usize) -> (usize, usize, Vec<f32>) {
    let at = |x: usize, y: usize, z: usize| values[x + d[0] * (y + d[1] * z)];
    let (w, h) = match axis {
        0 => (d[1], d[2]),
        1 => (d[0], d[2]),
        _ => (d[0], d[1]),
    };
    let mut out = Vec::with_capacity(w * h);
    for row in 0..h {
        for col in 0..w {
            out.push(match axis {
                0 => at(index, col, row),
                1 => at(col, index, row),
                _ => at(col, row, index),
            });
        }
    }
    (w, h, out)
}

/// Loads an image volume and its label volume as 2D samples along `opts.nifti_axis`.
///
/// # Errors
///
/// Read errors naming the file; [`Error::MaskSize`] when the volumes differ in size.
pub fn load_volume(
    id: &str,
    image: &Path,
    label: &Path,
    opts: &LoadOptions,
) -> Result<Vec<Sample>> {
    let axis = opts.nifti_axis;
    if axis > 2 {
        return Err(Error::invalid(
            "NIfTI axis",
            format!("{axis}; expected 0, 1 or 2"),
        ));
    }
    let (di, vi) = read_volume(image, opts)?;
    let (dl, vl) = read_volume(label, opts)?;
    if di != dl {
        return Err(Error::MaskSize {
            path: label.to_path_buf(),
            image: image.to_path_buf(),
            expected_w: di[0],
            expected_h: di[1] * di[2],
            found_w: dl[0],
            found_h: dl[1] * dl[2],
        });
    }
    let looks_like_hu = vi.iter().any(|&v| v < -500.0);
    let (lo, hi) = vi
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mut out = Vec::new();
    for index in 0..di[axis] {
        let (w, h, pixels) = slice(di, &vi, axis, index);
        let raw = Image::new(w, h, 1, pixels);
        let image_2d = if looks_like_hu {
            window_hu(&raw, opts.hu_window.0, opts.hu_window.1)?
        } else {
            let span = if hi > lo { hi - lo } else { 1.0 };
            Image::new(w, h, 1, raw.data.iter().map(|v| (v - lo) / span).collect())
        };
        let (_, _, labels) = slice(dl, &vl, axis, index);
        let mut distinct: Vec<f32> = labels.clone();
        distinct.sort_by(f32::total_cmp);
        distinct.dedup();
        if distinct.iter().filter(|&&v| v != 0.0).count() > 1
            && opts.label_rule == super::io::LabelRule::Binary
        {
            return Err(Error::NonBinaryLabel {
                path: label.to_path_buf(),
                values: format!("{:?}", &distinct[..distinct.len().min(8)]),
            });
        }
        let cut = match opts.label_rule {
            super::io::LabelRule::Threshold(t) => t,
            super::io::LabelRule::Binary => 0.0,
        };
        let mask = Mask::new(w, h, labels.iter().map(|&v| u8::from(v > cut)).collect());
        out.push(Sample {
            id: format!("{id}:{index}"),
            image: image_2d,
            label: mask,
            fov: Mask::filled(w, h, 1),
            fov_source: FovSource::WholeImage,
        });
    }
    Ok(out)
}
