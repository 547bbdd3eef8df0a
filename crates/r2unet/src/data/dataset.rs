//! Dataset layouts: which files form a split, and how an entry becomes
//! samples. One file per layout (`drive.rs`, `stare.rs`, ...); this module
//! holds what they share.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::image::{Image, Mask};
use super::io::{LabelRule, ReadLimits, read_ct, read_image, read_mask};
use super::preprocess::{HU_WINDOW, window_hu};
use super::sample::{FovSource, Sample};
use super::{chase, drive, folder, fov, lung, nifti, ph2, stare};
use crate::error::{Error, Result};

/// The dataset layouts the loaders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// DRIVE (Staal et al. 2004): `training/` and `test/` with `images/`, `1st_manual/`, `mask/`.
    Drive,
    /// STARE (Hoover et al. 2000): gzip PPM images and labels, Soares FOV masks.
    Stare,
    /// CHASE_DB1: `Image_NN{L,R}.jpg` with `_1stHO.png` / `_2ndHO.png` labels.
    Chase,
    /// PH2 dermoscopy: `images/IMDnnn.jpg`, `lesion_masks/IMDnnn_lesion.bmp`.
    Ph2,
    /// Lung CT slices: `2d_images/*.tif` (int16 HU) and `2d_masks/*.tif`.
    Lung,
    /// The user's own folder: `images/` and `masks/` paired by file stem.
    Folder,
    /// NIfTI volumes: `images/` and `labels/` (`.nii`, `.nii.gz`), sliced to 2D.
    Nifti,
}

impl DatasetKind {
    /// Every layout.
    pub const ALL: [DatasetKind; 7] = [
        DatasetKind::Drive,
        DatasetKind::Stare,
        DatasetKind::Chase,
        DatasetKind::Ph2,
        DatasetKind::Lung,
        DatasetKind::Folder,
        DatasetKind::Nifti,
    ];

    /// The `--dataset` name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Drive => "drive",
            DatasetKind::Stare => "stare",
            DatasetKind::Chase => "chase",
            DatasetKind::Ph2 => "ph2",
            DatasetKind::Lung => "lung",
            DatasetKind::Folder => "folder",
            DatasetKind::Nifti => "nifti",
        }
    }

    /// Whether the paper's retina protocol (patches, FOV) applies.
    pub fn is_retina(self) -> bool {
        matches!(
            self,
            DatasetKind::Drive | DatasetKind::Stare | DatasetKind::Chase
        )
    }

    /// The files of `split` under `dir`, validated for layout (not decoded).
    ///
    /// # Errors
    ///
    /// [`Error::Layout`] naming the folder or file when the layout is not met
    /// (missing folder, empty folder, image without label, unknown split).
    pub fn entries(self, dir: &Path, split: Split, opts: &LoadOptions) -> Result<Vec<Entry>> {
        opts.validate()?;
        require_dir(dir, "the dataset folder")?;
        let listed = if opts.leave_out.is_some() {
            Split::All
        } else {
            split
        };
        let entries = match self {
            DatasetKind::Drive => drive::entries(dir, listed, opts)?,
            DatasetKind::Stare => stare::entries(dir, listed, opts)?,
            DatasetKind::Chase => chase::entries(dir, listed, opts)?,
            DatasetKind::Ph2 => ph2::entries(dir, listed)?,
            DatasetKind::Lung => lung::entries(dir, listed)?,
            DatasetKind::Folder => folder::entries(dir, listed)?,
            DatasetKind::Nifti => nifti::entries(dir, listed)?,
        };
        let entries = match opts.leave_out {
            Some(fold) => leave_one_out(entries, fold, split).map_err(|e| layout(dir, e))?,
            None => entries,
        };
        if entries.is_empty() {
            return Err(layout(dir, format!("no {split} images found")));
        }
        Ok(entries)
    }

    /// Loads every sample of `split` (see [`Entry::load`]).
    ///
    /// # Errors
    ///
    /// The first layout or file error, naming the file.
    pub fn load(self, dir: &Path, split: Split, opts: &LoadOptions) -> Result<Vec<Sample>> {
        let mut samples = Vec::new();
        for entry in self.entries(dir, split, opts)? {
            samples.extend(entry.load(opts)?);
        }
        Ok(samples)
    }
}

/// Samples loaded one entry at a time, each a result naming its file.
pub type SampleIter = Box<dyn Iterator<Item = Result<Sample>> + Send>;

/// The samples of `split` of a dataset folder, or of the synthetic set with
/// its default [`TRAIN_IMAGES`](super::synthetic::TRAIN_IMAGES) when `source`
/// is `None`, read lazily (one entry in memory at a time).
///
/// # Errors
///
/// Layout errors (a missing folder, an empty split), up front.
pub fn split_samples(
    source: Option<(DatasetKind, &Path)>,
    split: Split,
    opts: &LoadOptions,
) -> Result<SampleIter> {
    let Some((kind, dir)) = source else {
        let images = super::synthetic::SyntheticRetina::default()
            .split(split, super::synthetic::TRAIN_IMAGES)?;
        return Ok(Box::new(images.into_iter().map(Ok)));
    };
    let entries = kind.entries(dir, split, opts)?;
    let opts = opts.clone();
    Ok(Box::new(entries.into_iter().flat_map(
        move |e| match e.load(&opts) {
            Ok(samples) => samples.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(err) => vec![Err(err)],
        },
    )))
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        let s = if s == "chase_db1" {
            "chase"
        } else {
            s.as_str()
        };
        DatasetKind::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "dataset",
                    format!("`{s}`; expected one of drive, stare, chase, ph2, lung, folder, nifti"),
                )
            })
    }
}

/// A standard split (see `../shared/data/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images.
    Train,
    /// A held-out validation set of images (PH2; folders with `val/`).
    Val,
    /// The test images.
    Test,
    /// Every image of the folder (user folders without splits).
    All,
}

impl Split {
    /// The `--split` name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::All => "all",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" | "training" => Ok(Split::Train),
            "val" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            "all" => Ok(Split::All),
            _ => Err(Error::invalid(
                "split",
                format!("`{s}`; expected train, val, test or all"),
            )),
        }
    }
}

/// Which human annotation is the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Annotator {
    /// The first observer: DRIVE `1st_manual`, STARE `labels-ah`, CHASE `_1stHO` (the standard).
    #[default]
    First,
    /// The second observer: DRIVE `2nd_manual` (test only), STARE `labels-vk`, CHASE `_2ndHO`.
    Second,
}

/// Where a retina dataset's field of view comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FovChoice {
    /// The dataset's own masks (DRIVE `mask/`; STARE `fov-mask-soares/`); computed where none ship.
    #[default]
    Given,
    /// STARE only: the V-GAN masks in `fov-mask-vgan/`.
    Vgan,
    /// Computed from the image (`fov::compute_fov`).
    Computed,
}

/// Options of the loaders; each layout uses those that apply to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Pixel-count limit checked on every header before decoding.
    pub limits: ReadLimits,
    /// How labels become 0/1.
    pub label_rule: LabelRule,
    /// Which observer's labels.
    pub annotator: Annotator,
    /// Source of the retina field of view.
    pub fov: FovChoice,
    /// CT window in Hounsfield units (low, high), mapped to [0, 1].
    pub hu_window: (f32, f32),
    /// Axis along which NIfTI volumes are sliced (0, 1 or 2; 2 = axial for RAS volumes).
    pub nifti_axis: usize,
    /// Leave-one-out fold `k`: of all the images in sorted order, the
    /// `k`-th (from 0) is the test split and the others the training split,
    /// instead of the layout's standard split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_out: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            limits: ReadLimits::default(),
            label_rule: LabelRule::Binary,
            annotator: Annotator::First,
            fov: FovChoice::Given,
            hu_window: HU_WINDOW,
            nifti_axis: 2,
            leave_out: None,
        }
    }
}

impl LoadOptions {
    /// Checks every setting's range.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the setting: a zero pixel limit, a label
    /// threshold outside (0, 1), a CT window that is not finite and
    /// increasing, a NIfTI axis other than 0, 1 or 2.
    pub fn validate(&self) -> Result<()> {
        if self.limits.max_pixels == 0 {
            return Err(Error::invalid("pixel limit", "must be positive"));
        }
        if let LabelRule::Threshold(t) = self.label_rule
            && !(t > 0.0 && t < 1.0)
        {
            return Err(Error::invalid(
                "label threshold",
                format!("{t}: expected a fraction of the full scale in (0, 1)"),
            ));
        }
        let (lo, hi) = self.hu_window;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::invalid(
                "CT window",
                format!("{lo}..{hi}: expected finite Hounsfield units, low below high"),
            ));
        }
        if self.nifti_axis > 2 {
            return Err(Error::invalid(
                "NIfTI slice axis",
                format!("{}: expected 0, 1 or 2", self.nifti_axis),
            ));
        }
        Ok(())
    }
}

/// How an entry's image is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    /// A photograph or any 8/16-bit image, scaled to [0, 1].
    Photo,
    /// A CT slice in Hounsfield units, windowed to [0, 1].
    Ct,
    /// A NIfTI volume (image and label volumes), sliced to 2D.
    Volume,
}

/// Where an entry's field of view comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FovSpec {
    /// A mask file.
    File(PathBuf),
    /// Computed from the image.
    Compute,
    /// The whole image.
    WholeImage,
}

/// One image (or volume) of a split, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Identifier within the dataset.
    pub id: String,
    /// The image (or image volume) file.
    pub image: PathBuf,
    /// The label (or label volume) file.
    pub label: PathBuf,
    /// The field of view.
    pub fov: FovSpec,
    /// How to read the image.
    pub kind: ImageKind,
}

impl Entry {
    /// A 2D entry.
    pub fn new(
        id: impl Into<String>,
        image: PathBuf,
        label: PathBuf,
        fov: FovSpec,
        kind: ImageKind,
    ) -> Self {
        Self {
            id: id.into(),
            image,
            label,
            fov,
            kind,
        }
    }

    /// Decodes the entry: one sample for a 2D file, one per slice for a volume.
    ///
    /// # Errors
    ///
    /// Any read error naming the file; [`Error::MaskSize`] when a label or FOV
    /// mask does not have its image's size.
    pub fn load(&self, opts: &LoadOptions) -> Result<Vec<Sample>> {
        let image = match self.kind {
            ImageKind::Photo => read_image(&self.image, opts.limits)?,
            ImageKind::Ct => {
                let (lo, hi) = opts.hu_window;
                window_hu(&read_ct(&self.image, opts.limits)?, lo, hi)?
            }
            ImageKind::Volume => {
                return nifti::load_volume(&self.id, &self.image, &self.label, opts);
            }
        };
        let label = read_mask(&self.label, opts.limits, opts.label_rule)?;
        check_same_size(&image, &label, &self.image, &self.label)?;
        let (fov, fov_source) = match &self.fov {
            FovSpec::File(path) => {
                let fov = read_mask(path, opts.limits, LabelRule::Threshold(0.5))?;
                check_same_size(&image, &fov, &self.image, path)?;
                (fov, FovSource::Given)
            }
            FovSpec::Compute => (fov::compute_fov(&image), FovSource::Computed),
            FovSpec::WholeImage => (
                Mask::filled(image.width, image.height, 1),
                FovSource::WholeImage,
            ),
        };
        Ok(vec![Sample {
            id: self.id.clone(),
            image,
            label,
            fov,
            fov_source,
        }])
    }
}

/// Errors with both sizes unless `mask` has `image`'s size.
pub(crate) fn check_same_size(
    image: &Image,
    mask: &Mask,
    image_path: &Path,
    mask_path: &Path,
) -> Result<()> {
    if (image.width, image.height) == (mask.width, mask.height) {
        return Ok(());
    }
    Err(Error::MaskSize {
        path: mask_path.to_path_buf(),
        image: image_path.to_path_buf(),
        expected_w: image.width,
        expected_h: image.height,
        found_w: mask.width,
        found_h: mask.height,
    })
}

/// A layout error about `path`.
pub(crate) fn layout(path: &Path, reason: impl Into<String>) -> Error {
    Error::Layout {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Errors unless `path` is a folder; `what` says what it should hold.
pub(crate) fn require_dir(path: &Path, what: &str) -> Result<()> {
    if path.is_dir() {
        Ok(())
    } else if path.exists() {
        Err(layout(path, format!("is not a folder (expected {what})")))
    } else {
        Err(layout(path, format!("folder not found (expected {what})")))
    }
}

/// Errors unless `path` is a file; `what` says what it should be.
pub(crate) fn require_file(path: &Path, what: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(layout(path, format!("file not found (expected {what})")))
    }
}

/// The files of `dir` whose names satisfy `keep`, sorted by name.
pub(crate) fn list_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for item in read {
        let path = item.map_err(|e| Error::io(dir, e))?.path();
        let keep_it = path.is_file()
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && keep(n));
        if keep_it {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The `split` of leave-one-out fold `fold` of `items` (sorted by id): the
/// `fold`-th alone for test, the others for training, none for validation.
fn leave_one_out<T>(
    mut items: Vec<T>,
    fold: usize,
    split: Split,
) -> std::result::Result<Vec<T>, String> {
    let n = items.len();
    if fold >= n {
        return Err(format!(
            "leave-one-out fold {fold}: the set has {n} images (folds 0-{})",
            n.saturating_sub(1)
        ));
    }
    Ok(match split {
        Split::Train => {
            items.remove(fold);
            items
        }
        Split::Test => vec![items.remove(fold)],
        Split::Val => Vec::new(),
        Split::All => items,
    })
}

/// Picks a standard split out of `items` sorted by id: the first `train`,
/// then `val`, then the rest for test.
pub(crate) fn split_sorted<T>(items: Vec<T>, train: usize, val: usize, split: Split) -> Vec<T> {
    let n = items.len();
    let (a, b) = (train.min(n), (train + val).min(n));
    let range = match split {
        Split::Train => 0..a,
        Split::Val => a..b,
        Split::Test => b..n,
        Split::All => 0..n,
    };
    items
        .into_iter()
        .skip(range.start)
        .take(range.len())
        .collect()
}

/// The file name of `path` up to its first dot (`im0001.ppm.gz` → `im0001`).
pub(crate) fn id_of(path: &Path) -> String {
    file_name(path).split('.').next().unwrap_or("").to_string()
}

/// The file name of `path` as text (for id parsing).
pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_tests_the_kth_and_trains_on_the_rest() {
        let items = || vec!["a", "b", "c", "d"];
        assert_eq!(leave_one_out(items(), 2, Split::Test).unwrap(), ["c"]);
        assert_eq!(
            leave_one_out(items(), 2, Split::Train).unwrap(),
            ["a", "b", "d"]
        );
        assert!(leave_one_out(items(), 0, Split::Val).unwrap().is_empty());
        assert_eq!(leave_one_out(items(), 3, Split::All).unwrap().len(), 4);
        let err = leave_one_out(items(), 4, Split::Test).unwrap_err();
        assert!(err.contains("fold 4") && err.contains("4 images"), "{err}");
    }
}
