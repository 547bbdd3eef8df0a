//! The user's own data: `images/` and `masks/` (optionally `fov/`), paired by
//! file stem, in any supported format (PNG, JPEG, TIFF, BMP, GIF, PPM/PGM, 8 or
//! 16 bit). Either flat (`DIR/images`, `DIR/masks`: split `all` or `train`) or
//! with split folders `DIR/train`, `DIR/val`, `DIR/test`, each laid out the
//! same way. A mask may carry a suffix: `name.png` pairs with `name.png`,
//! `name_mask.png`, `name_label.png`, `name_seg.png`, `name_gt.png` or
//! `name_segmentation.png`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dataset::{
    Entry, FovSpec, ImageKind, Split, file_name, layout, list_files, require_dir,
};
use crate::error::Result;

/// Image file extensions the readers decode (optionally followed by `.gz`).
pub const IMAGE_EXTENSIONS: [&str; 11] = [
    "png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "ppm", "pgm", "pnm", "pbm",
];

const MASK_SUFFIXES: [&str; 6] = ["", "_mask", "_label", "_seg", "_gt", "_segmentation"];

/// `(stem, true)` for a supported image file name, `(name, false)` otherwise.
pub(crate) fn image_stem(name: &str) -> (String, bool) {
    let base = name.strip_suffix(".gz").unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) => {
            (stem.to_string(), true)
        }
        _ => (name.to_string(), false),
    }
}

/// The folder holding `split`: `DIR/<split>` when split folders exist, else `DIR`.
pub(crate) fn split_root(dir: &Path, split: Split) -> Result<PathBuf> {
    let has_splits = ["train", "val", "test"]
        .iter()
        .any(|s| dir.join(s).is_dir());
    match (has_splits, split) {
        (true, Split::All) => Err(layout(
            dir,
            "has train/val/test folders: choose the split train, val or test",
        )),
        (true, _) => {
            let root = dir.join(split.name());
            require_dir(&root, &format!("the {split} split folder"))?;
            Ok(root)
        }
        (false, Split::All | Split::Train) => Ok(dir.to_path_buf()),
        (false, _) => Err(layout(
            dir,
            format!(
                "has no {split}/ folder; a flat images/ + masks/ folder is one split: use the split `all`"
            ),
        )),
    }
}

/// Maps each file of `dir` to its stem with `suffixes` removed.
fn stems(dir: &Path, suffixes: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    let mut map = BTreeMap::new();
    for path in list_files(dir, |n| image_stem(n).1)? {
        let (stem, _) = image_stem(file_name(&path));
        for suffix in suffixes {
            if let Some(base) = stem.strip_suffix(suffix) {
                map.entry(base.to_string()).or_insert_with(|| path.clone());
            }
        }
    }
    Ok(map)
}

/// The entries of `split` under a user folder.
///
/// # Errors
///
/// A layout error naming the folder or the image without a mask, or a file of
/// an unsupported format in `images/`.
pub fn entries(dir: &Path, split: Split) -> Result<Vec<Entry>> {
    let root = split_root(dir, split)?;
    let images = root.join("images");
    let masks = root.join("masks");
    require_dir(&images, "images/ with the input images")?;
    require_dir(
        &masks,
        "masks/ with one mask per image, paired by file name",
    )?;
    if let Some(odd) = list_files(&images, |n| !image_stem(n).1)?.first() {
        return Err(layout(
            odd,
            format!(
                "unsupported image format (expected one of {})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    let mask_by_stem = stems(&masks, &MASK_SUFFIXES)?;
    let fov_dir = root.join("fov");
    let fov_by_stem = if fov_dir.is_dir() {
        Some(stems(&fov_dir, &MASK_SUFFIXES)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for image in list_files(&images, |n| image_stem(n).1)? {
        let (stem, _) = image_stem(file_name(&image));
        let label = mask_by_stem.get(&stem).cloned().ok_or_else(|| {
            layout(
                &image,
                format!(
                    "has no mask in {} (expected {stem}.png, {stem}_mask.png, ...)",
                    masks.display()
                ),
            )
        })?;
        let fov = match &fov_by_stem {
            None => FovSpec::WholeImage,
            Some(map) => FovSpec::File(map.get(&stem).cloned().ok_or_else(|| {
                layout(&image, format!("has no FOV mask in {}", fov_dir.display()))
            })?),
        };
        out.push(Entry::new(stem, image, label, fov, ImageKind::Photo));
    }
    Ok(out)
}
