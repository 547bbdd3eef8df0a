//! Data: image types, readers for every paper dataset and the user's own
//! folders, preprocessing, field-of-view masks, patches and a synthetic retina.

pub mod augment;
pub mod chase;
pub mod check;
pub mod clahe;
pub mod dataset;
pub mod drive;
pub mod folder;
pub mod fov;
pub mod image;
pub mod io;
pub mod lung;
pub mod nifti;
pub mod patches;
pub mod ph2;
pub mod preprocess;
pub mod sample;
pub mod stare;
pub mod synthetic;

pub use dataset::{
    Annotator, DatasetKind, Entry, FovChoice, LoadOptions, SampleIter, Split, split_samples,
};
pub use image::{Image, Mask};
pub use io::{LabelRule, ReadLimits};
pub use sample::{FovSource, Sample};
