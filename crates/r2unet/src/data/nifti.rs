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
use super::preprocess::window_hu_in_place;
use super::sample::{FovSource, Sample};
use crate::atomic::Staged;
use crate::error::{Error, Result};

/// The name of a volume file without `.nii` or `.nii.gz`.
pub fn volume_stem(name: &str) -> Option<&str> {
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

/// The voxels of `volume` as f32 whatever their stored integer or float type
/// (CT volumes are usually int16).
fn voxels_as_f32(volume: nifti::InMemNiftiVolume) -> std::result::Result<Vec<f32>, String> {
    use nifti::NiftiType as T;
    fn cast<V: Copy>(
        data: nifti::Result<Vec<V>>,
        f: impl Fn(V) -> f32,
    ) -> std::result::Result<Vec<f32>, String> {
        data.map(|v| v.into_iter().map(f).collect())
            .map_err(|e| e.to_string())
    }
    match volume.data_type() {
        T::Uint8 => cast(volume.into_nifti_typed_data::<u8>(), f32::from),
        T::Int8 => cast(volume.into_nifti_typed_data::<i8>(), f32::from),
        T::Uint16 => cast(volume.into_nifti_typed_data::<u16>(), f32::from),
        T::Int16 => cast(volume.into_nifti_typed_data::<i16>(), f32::from),
        T::Uint32 => cast(volume.into_nifti_typed_data::<u32>(), |v| v as f32),
        T::Int32 => cast(volume.into_nifti_typed_data::<i32>(), |v| v as f32),
        T::Uint64 => cast(volume.into_nifti_typed_data::<u64>(), |v| v as f32),
        T::Int64 => cast(volume.into_nifti_typed_data::<i64>(), |v| v as f32),
        T::Float32 => cast(volume.into_nifti_typed_data::<f32>(), |v| v),
        T::Float64 => cast(volume.into_nifti_typed_data::<f64>(), |v| v as f32),
        other => Err(format!(
            "voxel type {other:?} is not supported (expected an integer or float type)"
        )),
    }
}

/// A volume as `(header, dims [x, y, z], values in file order, x fastest)`.
fn read_volume(
    path: &Path,
    opts: &LoadOptions,
) -> Result<(nifti::NiftiHeader, [usize; 3], Vec<f32>)> {
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
    let mut values = guard(path, || voxels_as_f32(volume))?.map_err(bad)?;
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
    Ok((header, d, values))
}

/// One image volume read for inference: its header (kept for the outputs'
/// geometry), its dimensions and its voxels normalised as training
/// normalises them (CT windowed, anything else min-max over the volume).
pub struct ImageVolume {
    /// The input's header: dimensions, voxel sizes, qform/sform, orientation.
    pub header: nifti::NiftiHeader,
    /// `[x, y, z]`.
    pub dims: [usize; 3],
    /// Voxels in file order (x fastest), normalised to `[0, 1]`.
    pub values: Vec<f32>,
}

impl ImageVolume {
    /// Reads `path` and normalises it like [`load_volume`] normalises images.
    ///
    /// # Errors
    ///
    /// Read errors naming the file; a window that is not increasing.
    pub fn read(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let (header, dims, values) = read_volume(path, opts)?;
        let values = normalise(values, opts)?;
        Ok(Self {
            header,
            dims,
            values,
        })
    }

    /// Slices along `axis` (0, 1 or 2).
    pub fn slices(&self, axis: usize) -> usize {
        self.dims[axis.min(2)]
    }

    /// Slice `index` along `axis` as a grey image.
    pub fn slice(&self, axis: usize, index: usize) -> Image {
        let (w, h, pixels) = slice(self.dims, &self.values, axis, index);
        Image::new(w, h, 1, pixels)
    }
}

/// Puts the row-major `w x h` values of slice `index` along `axis` back into
/// `volume` (file order, x fastest): the inverse of [`slice`].
pub fn unslice<T: Copy>(
    dims: [usize; 3],
    volume: &mut [T],
    axis: usize,
    index: usize,
    values: &[T],
) {
    let at = |x: usize, y: usize, z: usize| x + dims[0] * (y + dims[1] * z);
    let w = match axis {
        0 => dims[1],
        _ => dims[0],
    };
    for (i, &v) in values.iter().enumerate() {
        let (col, row) = (i % w, i / w);
        let k = match axis {
            0 => at(index, col, row),
            1 => at(col, index, row),
            _ => at(col, row, index),
        };
        volume[k] = v;
    }
}

/// Writes `values` (file order, x fastest) of `dims` as a NIfTI-1 file at
/// `path` (`.nii` or `.nii.gz`) with `reference`'s geometry: dimensions,
/// voxel sizes, qform/sform and orientation are copied; the data type is
/// `T`'s, the scaling is 1/0. Written to a temporary file of `set`, so an
/// existing file is replaced, whole, only when the set is committed.
///
/// # Errors
///
/// I/O errors naming the file.
pub fn write_volume<T>(
    set: &mut Staged,
    path: &Path,
    reference: &nifti::NiftiHeader,
    dims: [usize; 3],
    values: Vec<T>,
) -> Result<()>
where
    T: nifti::DataElement + bytemuck::Pod,
{
    use ndarray::ShapeBuilder;
    let data = ndarray::Array3::from_shape_vec((dims[0], dims[1], dims[2]).f(), values)
        .map_err(|e| Error::invalid("volume", e.to_string()))?;
    // The writer compresses by its path's extension and names its file by
    // dropping the last extension and adding `nii` or `nii.gz` (its
    // `output_paths`): `a.tmp.nii.gz` stays itself, but `a.tmp.nii` would
    // become `a.nii`, so that one is handed over as `a.tmp.x.nii`.
    let gz = file_name(path).ends_with(".gz");
    let suffix = if gz { ".nii.gz" } else { ".nii" };
    set.write_with(path, suffix, |tmp| {
        let given = if gz {
            tmp.to_path_buf()
        } else {
            tmp.with_extension("x.nii")
        };
        nifti::writer::WriterOptions::new(&given)
            .reference_header(reference)
            .write_nifti(&data)
            .map_err(|e| Error::Image {
                path: path.to_path_buf(),
                reason: format!("writing NIfTI: {e}"),
            })
    })
}

/// Voxels normalised as training does: windowed when they look like
/// Hounsfield units (any below -500), else min-max over the volume.
fn normalise(mut values: Vec<f32>, opts: &LoadOptions) -> Result<Vec<f32>> {
    if values.iter().any(|&v| v < -500.0) {
        let (lo, hi) = opts.hu_window;
        window_hu_in_place(&mut values, lo, hi)?;
        return Ok(values);
    }
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    values.iter_mut().for_each(|v| *v = (*v - lo) / span);
    Ok(values)
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
    let (_, di, vi) = read_volume(image, opts)?;
    let (_, dl, vl) = read_volume(label, opts)?;
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
    let vi = normalise(vi, opts)?;
    let mut out = Vec::new();
    for index in 0..di[axis] {
        let (w, h, pixels) = slice(di, &vi, axis, index);
        let image_2d = Image::new(w, h, 1, pixels);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unslice_puts_every_slice_back_where_slice_took_it() {
        let dims = [4, 3, 5];
        let volume: Vec<f32> = (0..60).map(|v| v as f32).collect();
        for axis in 0..3 {
            let mut rebuilt = vec![-1.0; 60];
            for index in 0..dims[axis] {
                let (w, h, values) = slice(dims, &volume, axis, index);
                assert_eq!(w * h * dims[axis], 60);
                unslice(dims, &mut rebuilt, axis, index, &values);
            }
            assert_eq!(rebuilt, volume, "axis {axis}");
        }
    }

    #[test]
    fn a_written_volume_reads_back_with_its_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = nifti::NiftiHeader {
            pixdim: [1.0, 0.5, 0.75, 2.0, 1.0, 1.0, 1.0, 1.0],
            qform_code: 1,
            sform_code: 1,
            srow_x: [0.5, 0.0, 0.0, -10.0],
            srow_y: [0.0, 0.75, 0.0, 5.0],
            srow_z: [0.0, 0.0, 2.0, 1.0],
            ..Default::default()
        };
        header.dim = [3, 4, 3, 2, 1, 1, 1, 1];
        let values: Vec<u8> = (0..24).map(|v| (v % 2) as u8).collect();
        // Uncompressed too, each as one file with no other left beside it.
        let plain = dir.path().join("m.nii");
        let path = dir.path().join("m.nii.gz");
        let mut set = Staged::default();
        write_volume(&mut set, &path, &header, [4, 3, 2], values.clone()).unwrap();
        write_volume(&mut set, &plain, &header, [4, 3, 2], values.clone()).unwrap();
        set.commit().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["m.nii", "m.nii.gz"]);
        assert_eq!(
            read_volume(&plain, &LoadOptions::default()).unwrap().2,
            values.iter().map(|&v| f32::from(v)).collect::<Vec<_>>()
        );
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw[..2], [0x1f, 0x8b], "gzip");
        let back = nifti::NiftiHeader::from_file(&path).unwrap();
        assert_eq!(back.dim[..4], [3, 4, 3, 2]);
        assert_eq!(back.pixdim[1..4], [0.5, 0.75, 2.0]);
        assert_eq!((back.srow_x, back.srow_z), (header.srow_x, header.srow_z));
        let opts = LoadOptions::default();
        let (_, dims, read) = read_volume(&path, &opts).unwrap();
        assert_eq!(dims, [4, 3, 2]);
        assert_eq!(
            read,
            values.iter().map(|&v| f32::from(v)).collect::<Vec<_>>()
        );
    }
}
