//! Field-of-view masks computed from fundus images (in progress).
