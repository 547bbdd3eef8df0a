//! DRIVE (Staal et al. 2004): `training/` (ids 21-40) and `test/` (ids 01-20),
//! each with `images/NN_{training,test}.tif`, `1st_manual/NN_manual1.gif` and
//! `mask/NN_{training,test}_mask.gif` (the field of view); `test/2nd_manual/`
//! holds the second observer's labels as palette GIFs.

use std::path::Path;

use super::dataset::{
    Annotator, Entry, FovChoice, FovSpec, ImageKind, LoadOptions, Split, file_name, layout,
    list_files, require_dir, require_file,
};
use crate::error::Result;

/// The entries of `split` under a DRIVE folder.
///
/// # Errors
///
/// A layout error naming the missing folder or file.
pub fn entries(dir: &Path, split: Split, opts: &LoadOptions) -> Result<Vec<Entry>> {
    let part = match split {
        Split::Train => "training",
        Split::Test => "test",
        Split::Val | Split::All => {
            return Err(layout(
                dir,
                format!(
                    "DRIVE has no `{split}` split: use train or test (validation comes from the training images)"
                ),
            ));
        }
    };
    if opts.annotator == Annotator::Second && split == Split::Train {
        return Err(layout(
            dir,
            "DRIVE's second observer (2nd_manual) labelled only the test images: train with the first annotator's labels",
        ));
    }
    let root = dir.join(part);
    require_dir(&root, "DRIVE's training/ and test/ folders")?;
    let images = root.join("images");
    require_dir(&images, &format!("the {part} images NN_{part}.tif"))?;
    let files = list_files(&images, |n| n.ends_with(&format!("_{part}.tif")))?;
    let mut out = Vec::new();
    for image in files {
        let id = file_name(&image)
            .trim_end_matches(&format!("_{part}.tif"))
            .to_string();
        let label = match opts.annotator {
            Annotator::First => root.join("1st_manual").join(format!("{id}_manual1.gif")),
            Annotator::Second => root.join("2nd_manual").join(format!("{id}_manual2.gif")),
        };
        require_file(&label, &format!("the label of {}", image.display()))?;
        let fov = match opts.fov {
            FovChoice::Computed => FovSpec::Compute,
            FovChoice::Given | FovChoice::Vgan => {
                let mask = root.join("mask").join(format!("{id}_{part}_mask.gif"));
                require_file(&mask, &format!("the FOV mask of {}", image.display()))?;
                FovSpec::File(mask)
            }
        };
        out.push(Entry::new(id, image, label, fov, ImageKind::Photo));
    }
    Ok(out)
}
