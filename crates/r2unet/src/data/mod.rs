//! Data: image types, readers for every paper dataset and the user's own
//! folders, preprocessing, field-of-view masks, patches and a synthetic retina.

pub mod fov;
pub mod image;
pub mod preprocess;
pub mod sample;
pub mod synthetic;

pub use image::{Image, Mask};
pub use sample::{FovSource, Sample};
