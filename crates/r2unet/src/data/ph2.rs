//! PH2 dermoscopy (Mendonça et al. 2013): `images/IMDnnn.jpg` (or `.bmp`/`.png`)
//! and `lesion_masks/IMDnnn_lesion.bmp` (199 of them 1-bit, one 24-bit RGB).
//! Split in sorted order: the first 140 train, the next 20 validation, the last
//! 40 test. Whole-image field of view.

use std::path::Path;

use super::dataset::{
    Entry, FovSpec, ImageKind, Split, id_of, list_files, require_dir, require_file, split_sorted,
};
use crate::error::Result;

/// The entries of `split` under a PH2 folder.
///
/// # Errors
///
/// A layout error naming the missing folder or mask.
pub fn entries(dir: &Path, split: Split) -> Result<Vec<Entry>> {
    let images = dir.join("images");
    require_dir(&images, "PH2 images IMDnnn.jpg")?;
    require_dir(&dir.join("lesion_masks"), "PH2 masks IMDnnn_lesion.bmp")?;
    let files = list_files(&images, |n| {
        n.starts_with("IMD") && [".jpg", ".bmp", ".png"].iter().any(|e| n.ends_with(e))
    })?;
    let mut all = Vec::new();
    for image in files {
        let id = id_of(&image);
        let label = dir.join("lesion_masks").join(format!("{id}_lesion.bmp"));
        require_file(&label, &format!("the lesion mask of {}", image.display()))?;
        all.push(Entry::new(
            id,
            image,
            label,
            FovSpec::WholeImage,
            ImageKind::Photo,
        ));
    }
    Ok(split_sorted(all, 140, 20, split))
}
