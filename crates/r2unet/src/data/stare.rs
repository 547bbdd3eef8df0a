//! STARE (Hoover et al. 2000), as the original release ships it: gzip-compressed
//! PPM images `images/imNNNN.ppm.gz` and labels `labels-ah/imNNNN.ah.ppm.gz`
//! (first observer, the standard) or `labels-vk/imNNNN.vk.ppm.gz`; FOV masks
//! from Soares (`fov-mask-soares/imNNNN_mask.pgm.gz`), V-GAN
//! (`fov-mask-vgan/imNNNN_mask.ppm.gz`) or computed. Split: the first 10 ids in
//! sorted order train, the last 10 test.

use std::path::Path;

use super::dataset::{
    Annotator, Entry, FovChoice, FovSpec, ImageKind, LoadOptions, Split, id_of, list_files,
    require_dir, require_file, split_sorted,
};
use crate::error::Result;

/// The entries of `split` under a STARE folder.
///
/// # Errors
///
/// A layout error naming the missing folder or file.
pub fn entries(dir: &Path, split: Split, opts: &LoadOptions) -> Result<Vec<Entry>> {
    let images = dir.join("images");
    require_dir(&images, "STARE images imNNNN.ppm(.gz)")?;
    let files = list_files(&images, |n| {
        n.starts_with("im") && (n.ends_with(".ppm.gz") || n.ends_with(".ppm"))
    })?;
    let (label_dir, label_tag) = match opts.annotator {
        Annotator::First => ("labels-ah", "ah"),
        Annotator::Second => ("labels-vk", "vk"),
    };
    let mut all = Vec::new();
    for image in files {
        let id = id_of(&image);
        let label = first_existing(dir, label_dir, &format!("{id}.{label_tag}.ppm"));
        require_file(
            &label,
            &format!("the {label_dir} label of {}", image.display()),
        )?;
        let fov = match opts.fov {
            FovChoice::Computed => FovSpec::Compute,
            FovChoice::Given => {
                let mask = first_existing(dir, "fov-mask-soares", &format!("{id}_mask.pgm"));
                require_file(
                    &mask,
                    &format!(
                        "the Soares FOV mask of {} (or use a computed FOV)",
                        image.display()
                    ),
                )?;
                FovSpec::File(mask)
            }
            FovChoice::Vgan => {
                let mask = first_existing(dir, "fov-mask-vgan", &format!("{id}_mask.ppm"));
                require_file(&mask, &format!("the V-GAN FOV mask of {}", image.display()))?;
                FovSpec::File(mask)
            }
        };
        all.push(Entry::new(id, image, label, fov, ImageKind::Photo));
    }
    Ok(split_sorted(all, 10, 0, split))
}

/// `dir/sub/name.gz` if it exists, else `dir/sub/name`.
fn first_existing(dir: &Path, sub: &str, name: &str) -> std::path::PathBuf {
    let gz = dir.join(sub).join(format!("{name}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(sub).join(name)
    }
}
