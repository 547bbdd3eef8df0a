//! Numerical parity with the PyTorch reference (`../shared/reference/r2unet_torch.py
//! export`, torch 2.9.0, widths 4,8,16, 16x16, batch 2, seed 0): eval-mode and
//! train-mode logits, the BCE-with-logits loss, and every tensor after one Adam
//! step (lr 1e-3, betas 0.9/0.999, eps 1e-8), each within 1e-4
//! ([`r2unet::parity`] does the replay; it is also `r2unet parity`).

use r2unet::parity::{TOLERANCE, check_fixture, fixtures_in};

fn check(name: &str) {
    let dir = super::fixtures().join("parity").join(name);
    let report = check_fixture(&dir, &super::test_device()).unwrap();
    assert!(report.passes(TOLERANCE), "{report:?}");
    assert!(report.tensors_compared > 10, "{report:?}");
}

#[test]
fn unet_matches_pytorch() {
    check("unet");
}

#[test]
fn resunet_matches_pytorch() {
    check("resunet");
}

#[test]
fn resunet_per_step_matches_pytorch() {
    check("resunet_per_step");
}

#[test]
fn runet_matches_pytorch() {
    check("runet");
}

#[test]
fn runet_per_step_matches_pytorch() {
    check("runet_per_step");
}

#[test]
fn r2unet_matches_pytorch() {
    check("r2unet");
}

#[test]
fn r2unet_per_step_matches_pytorch() {
    check("r2unet_per_step");
}

#[test]
fn every_fixture_is_listed_and_a_folder_without_one_is_refused() {
    let dirs = fixtures_in(&super::fixtures().join("parity")).unwrap();
    assert_eq!(dirs.len(), 7);
    let empty = tempfile::tempdir().unwrap();
    let err = fixtures_in(empty.path()).unwrap_err().to_string();
    assert!(err.contains("meta.json"), "{err}");
}
