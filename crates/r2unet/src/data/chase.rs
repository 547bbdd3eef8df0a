//! CHASE_DB1 (Owen et al. 2009), as distributed: 28 RGB JPEGs
//! `Image_NN{L,R}.jpg` with 1-bit PNG labels `Image_NN{L,R}_1stHO.png` and
//! `_2ndHO.png`, in one folder or split into `images/` and `manual/`. No FOV
//! ships, so it is computed. Split: the first 20 (`Image_01L`..`Image_10R`)
//! train, the last 8 test.

use std::path::Path;

use super::dataset::{
    Annotator, Entry, FovSpec, ImageKind, LoadOptions, Split, id_of, list_files, require_file,
    split_sorted,
};
use crate::error::Result;

/// The entries of `split` under a CHASE_DB1 folder.
///
/// # Errors
///
/// A layout error naming the missing folder or label.
pub fn entries(dir: &Path, split: Split, opts: &LoadOptions) -> Result<Vec<Entry>> {
    let (images, labels) = if dir.join("images").is_dir() {
        (dir.join("images"), dir.join("manual"))
    } else {
        (dir.to_path_buf(), dir.to_path_buf())
    };
    let files = list_files(&images, |n| {
        n.starts_with("Image_") && (n.ends_with(".jpg") || n.ends_with(".JPG"))
    })?;
    let tag = match opts.annotator {
        Annotator::First => "1stHO",
        Annotator::Second => "2ndHO",
    };
    let mut all = Vec::new();
    for image in files {
        let id = id_of(&image);
        let label = labels.join(format!("{id}_{tag}.png"));
        require_file(&label, &format!("the {tag} label of {}", image.display()))?;
        all.push(Entry::new(
            id,
            image,
            label,
            FovSpec::Compute,
            ImageKind::Photo,
        ));
    }
    Ok(split_sorted(all, 20, 0, split))
}
