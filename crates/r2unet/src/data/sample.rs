//! One labelled image of a dataset, as every loader returns it.

use super::image::{Image, Mask};

/// Where a sample's field-of-view mask came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FovSource {
    /// Shipped with the dataset (DRIVE `mask/`, STARE `fov-mask-soares`).
    Given,
    /// Computed from the image (`fov::compute_fov`).
    Computed,
    /// The whole image (skin lesions, CT, user folders).
    WholeImage,
}

impl FovSource {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            FovSource::Given => "given",
            FovSource::Computed => "computed",
            FovSource::WholeImage => "whole-image",
        }
    }
}

/// An image with its ground truth and field of view, all the same size.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Identifier within the dataset (e.g. `21` for DRIVE `21_training.tif`).
    pub id: String,
    /// The image, values in `[0, 1]` (CT: Hounsfield-like until windowed).
    pub image: Image,
    /// Ground truth, 0/1.
    pub label: Mask,
    /// Field of view: metrics and patch centres are restricted to it.
    pub fov: Mask,
    /// Where `fov` came from.
    pub fov_source: FovSource,
}
