//! Lung CT slices (Kaggle "Finding and Measuring Lungs in CT Data"):
//! `2d_images/ID_XXXX_Z_YYYY.tif` (int16, Hounsfield-like) and
//! `2d_masks/` with the same names (uint8 LZW TIFF, 0/1). Split in sorted
//! order: the first 56 train, the last 24 test (of the 80 staged slices;
//! 70%/30% of however many there are). Whole-image field of view.

use std::path::Path;

use super::dataset::{
    Entry, FovSpec, ImageKind, Split, file_name, list_files, require_dir, require_file,
    split_sorted,
};
use crate::error::Result;

/// The entries of `split` under a LUNG folder.
///
/// # Errors
///
/// A layout error naming the missing folder or mask.
pub fn entries(dir: &Path, split: Split) -> Result<Vec<Entry>> {
    let images = dir.join("2d_images");
    require_dir(&images, "CT slices 2d_images/*.tif")?;
    require_dir(&dir.join("2d_masks"), "lung masks 2d_masks/*.tif")?;
    let files = list_files(&images, |n| n.ends_with(".tif") || n.ends_with(".tiff"))?;
    let mut all = Vec::new();
    for image in files {
        let name = file_name(&image).to_string();
        let label = dir.join("2d_masks").join(&name);
        require_file(&label, &format!("the mask of {}", image.display()))?;
        let id = name.split('.').next().unwrap_or("").to_string();
        all.push(Entry::new(
            id,
            image,
            label,
            FovSpec::WholeImage,
            ImageKind::Ct,
        ));
    }
    // 56 of 80 in the standard split: 70%.
    let train = (all.len() * 7).div_ceil(10);
    Ok(split_sorted(all, train, 0, split))
}
