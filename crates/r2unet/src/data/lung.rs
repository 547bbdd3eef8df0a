//! Lung CT slices (Kaggle "Finding and Measuring Lungs in CT Data", all 267
//! slices): `2d_images/ID_XXXX_Z_YYYY.tif` (int16, Hounsfield-like) and
//! `2d_masks/` with the same names (uint8 LZW TIFF, 0/1). Whole-image field
//! of view. Split by slice ID, the paper's 70/30 and the source's: IDs
//! 0000-0186 train (187 slices), 0187-0266 test (80); a folder with only
//! some of the slices keeps each one on its side of that line.

use std::path::Path;

use super::dataset::{
    Entry, FovSpec, ImageKind, Split, file_name, list_files, require_dir, require_file,
};
use crate::error::{Error, Result};

/// The first slice ID of the test split (`ID_0187`).
pub const FIRST_TEST_ID: u32 = 187;

/// The slice whose mask also marks air outside the body as lung (SOURCE.txt's
/// "known label quirk"); reported separately, never dropped silently.
pub const QUIRK_SLICE: &str = "ID_0254_Z_0075";

/// The numeric slice ID of a file name `ID_XXXX_...`.
fn slice_id(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("ID_")?.split('_').next()?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The entries of `split` under a LUNG folder.
///
/// # Errors
///
/// A layout error naming the missing folder or mask, or a slice whose name
/// does not carry its ID (`ID_XXXX_...`), which the split needs.
pub fn entries(dir: &Path, split: Split) -> Result<Vec<Entry>> {
    let images = dir.join("2d_images");
    require_dir(&images, "CT slices 2d_images/*.tif")?;
    require_dir(&dir.join("2d_masks"), "lung masks 2d_masks/*.tif")?;
    let files = list_files(&images, |n| n.ends_with(".tif") || n.ends_with(".tiff"))?;
    let mut selected = Vec::new();
    for image in files {
        let name = file_name(&image).to_string();
        let id = slice_id(&name).ok_or_else(|| Error::Layout {
            path: image.clone(),
            reason: "expected a slice named ID_XXXX_Z_YYYY.tif: the train/test split \
                     goes by the slice ID (0000-0186 train, 0187 on test)"
                .into(),
        })?;
        let in_split = match split {
            Split::Train => id < FIRST_TEST_ID,
            Split::Test => id >= FIRST_TEST_ID,
            Split::Val => false,
            Split::All => true,
        };
        if !in_split {
            continue;
        }
        let label = dir.join("2d_masks").join(&name);
        require_file(&label, &format!("the mask of {}", image.display()))?;
        let stem = name.split('.').next().unwrap_or("").to_string();
        selected.push(Entry::new(
            stem,
            image,
            label,
            FovSpec::WholeImage,
            ImageKind::Ct,
        ));
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_ids_come_from_the_name() {
        assert_eq!(slice_id("ID_0000_Z_0142.tif"), Some(0));
        assert_eq!(slice_id("ID_0187_Z_0069.tif"), Some(187));
        assert_eq!(slice_id("ID_x_Z_0069.tif"), None);
        assert_eq!(slice_id("ID__Z.tif"), None);
        assert_eq!(slice_id("scan.tif"), None);
    }
}
