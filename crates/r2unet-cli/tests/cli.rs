//! The `r2unet` binary end to end: exit codes, JSON output, error messages.

use std::process::{Command, Output};

fn r2unet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_r2unet"))
        .args(args)
        .output()
        .expect("the r2unet binary runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = r2unet(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn info_json_reports_the_reference_counts() {
    // Counts and FLOPs of ../shared/reference/r2unet_torch.py (torch 2.9.0).
    let v = json(&[
        "info", "--model", "r2unet", "--preset", "retina", "--bn", "shared", "--json",
    ]);
    assert_eq!(v["model"], "r2unet");
    assert_eq!(v["preset"], "retina");
    assert_eq!(v["t"], 2);
    assert_eq!(v["widths"], serde_json::json!([16, 32, 64, 128]));
    assert_eq!(v["params"], 609_553);
    let gflop = v["gflop_per_patch"].as_f64().unwrap();
    assert!((gflop - 0.5186).abs() < 1e-4, "{gflop}");

    let v = json(&["info", "--model", "unet", "--json"]);
    assert_eq!(v["params"], 537_137);
    let v = json(&["info", "--model", "runet", "--bn", "per-step", "--json"]);
    assert_eq!(v["params"], 612_369);
    let v = json(&["info", "--model", "r2unet", "--preset", "classic", "--json"]);
    assert_eq!(v["params"], 39_114_945);
}

#[test]
fn info_text_names_the_model() {
    let out = r2unet(&["info", "--model", "attr2unet", "--t", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("attr2unet (t = 3"), "{text}");
}

#[test]
fn bad_flags_fail_with_a_clear_message() {
    let out = r2unet(&["info", "--model", "r3unet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unet, resunet, runet, r2unet"));

    let out = r2unet(&["info", "--size", "50"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 8"));

    let out = r2unet(&["info", "--widths", "16,0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("widths"));
}

#[test]
fn a_device_not_compiled_in_names_the_feature() {
    if cfg!(feature = "vulkan") {
        eprintln!("skipped: this build has the vulkan feature");
        return;
    }
    let out = r2unet(&["info", "--device", "vulkan"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features vulkan"), "{err}");
}

#[test]
fn import_converts_a_leejunhyun_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("r2u.safetensors");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../r2unet/tests/fixtures/leejunhyun/R2U_Net/weights.safetensors"
    );
    let out = r2unet(&[
        "import",
        fixture,
        "--layout",
        "leejunhyun",
        "--preset",
        "classic",
        "--bn",
        "shared",
        "--widths",
        "2,4,8,16,32",
        "--size",
        "32",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_path.exists() && out_path.with_extension("json").exists());

    // The wrong batch-norm mode names the first tensor it cannot find.
    let out = r2unet(&[
        "import",
        fixture,
        "--layout",
        "leejunhyun",
        "--preset",
        "classic",
        "--widths",
        "2,4,8,16,32",
        "--size",
        "32",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("enc.0.body.0.conv.weight") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn data_check_reports_drive_splits_as_json() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/DRIVE");
    if !dir.is_dir() {
        eprintln!(
            "skipped: {} not found (needs ../shared/data)",
            dir.display()
        );
        return;
    }
    let v = json(&[
        "data",
        "check",
        "--dataset",
        "drive",
        "--data",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["dataset"], "drive");
    assert_eq!(v["splits"]["train"]["count"], 20);
    assert_eq!(v["splits"]["test"]["count"], 20);
    assert_eq!(v["splits"]["test"]["fov_source"], "given");
}

#[test]
fn data_check_fails_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = r2unet(&[
        "data",
        "check",
        "--dataset",
        "folder",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("images") && err.contains("not found"), "{err}");

    let out = r2unet(&["data", "check", "--dataset", "retina9", "--data", "."]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("drive, stare, chase"));

    let out = r2unet(&[
        "data",
        "check",
        "--dataset",
        "lung",
        "--data",
        ".",
        "--hu-window",
        "400,-1000",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("low < high"));
}
