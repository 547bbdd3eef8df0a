//! Whole-image inference: probability maps for images of any size.

mod single_pass;

pub use single_pass::{predict_single_pass, reflect_pad};
