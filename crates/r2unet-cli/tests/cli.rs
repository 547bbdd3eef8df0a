//! The `r2unet` binary end to end: exit codes, JSON output, error messages.

use std::process::{Command, Output};

fn r2unet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_r2unet"))
        .args(args)
        .output()
        .expect("the r2unet binary runs")
}

/// Runs the binary, asserting success (its stderr in the message); its stdout.
fn stdout_of(args: &[&str]) -> String {
    let out = r2unet(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout_of(args)).expect("one JSON object")
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

#[test]
fn train_then_eval_then_resume_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = r2unet(&[
        "train",
        "--dataset",
        "synthetic",
        "--synthetic-images",
        "4",
        "--epochs",
        "2",
        "--patches-per-image",
        "16",
        "--widths",
        "4,8",
        "--patch-size",
        "16",
        "--batch-size",
        "8",
        "--keep-epochs",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("epoch 1 done") && log.contains("patches/s"),
        "{log}"
    );
    for f in [
        "config.json",
        "metrics.csv",
        "best.safetensors",
        "last.safetensors",
        "state.json",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }

    // A folder dataset of two fundus-like RGB images with one labelled row each.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::create_dir_all(data.join("masks")).unwrap();
    for i in 0..2u32 {
        image::RgbImage::from_fn(40, 36, |x, y| {
            let r = ((x as f32 - 20.0).powi(2) + (y as f32 - 18.0).powi(2)).sqrt();
            let v = if r < 16.0 {
                180 - 20 * u8::from(y == 10 + i)
            } else {
                3
            };
            image::Rgb([v, v / 2, v / 4])
        })
        .save(data.join(format!("images/im{i}.png")))
        .unwrap();
        image::GrayImage::from_fn(40, 36, |_, y| {
            image::Luma([if y == 10 + i { 255 } else { 0 }])
        })
        .save(data.join(format!("masks/im{i}.png")))
        .unwrap();
    }
    let report = tmp.path().join("report");
    let v = json(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--dataset",
        "folder",
        "--data",
        data.to_str().unwrap(),
        "--split",
        "all",
        "--out",
        report.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["fixed"]["per_image"].as_array().unwrap().len(), 2);
    let auc = v["fixed"]["pooled"]["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    // `all` overlaps every split: no threshold is tuned on it.
    assert!(v["tuned"].is_null());
    for f in [
        "report.json",
        "report.md",
        "roc.png",
        "pr.png",
        "images/im0_overlay.png",
    ] {
        assert!(report.join(f).exists(), "{f}");
    }
    assert!(
        std::fs::read_to_string(report.join("report.md"))
            .unwrap()
            .contains("images/im0_overlay.png")
    );
    // Evaluated again into the same folder without pictures, the reports link
    // and embed none: the ones left there show the earlier evaluation.
    stdout_of(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--dataset",
        "folder",
        "--data",
        data.to_str().unwrap(),
        "--split",
        "all",
        "--out",
        report.to_str().unwrap(),
        "--no-pictures",
    ]);
    let read = |page: &str| std::fs::read_to_string(report.join(page)).unwrap();
    assert!(!read("report.md").contains("im0_overlay"));
    assert!(!read("report.html").contains("<h2>Pictures</h2>"));

    // A retina run validates on patches of every training image: it has no
    // held-out images to evaluate, and says so.
    let out = r2unet(&["eval", "--run", run.to_str().unwrap(), "--held-out"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("patches of every training image"), "{err}");

    // Every kept epoch model on the same images: accuracy against patches seen.
    let curve = tmp.path().join("curve");
    let every = |run: &std::path::Path| {
        r2unet(&[
            "eval",
            "--run",
            run.to_str().unwrap(),
            "--every-epoch",
            "--dataset",
            "folder",
            "--data",
            data.to_str().unwrap(),
            "--split",
            "all",
            "--out",
            curve.to_str().unwrap(),
        ])
    };
    let out = every(&run);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(curve.join("curve.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    // 4 images x 16 patches, 10% held out: 8 steps of 8 an epoch.
    assert!(
        rows[0].starts_with("1,64,") && rows[1].starts_with("2,128,"),
        "{csv}"
    );
    assert!(curve.join("curve.png").is_file() && stdout.contains("patches seen"));
    // Measured epochs stay in the curve once their models are deleted.
    std::fs::remove_file(run.join("epoch-001.safetensors")).unwrap();
    std::fs::remove_file(run.join("epoch-002.safetensors")).unwrap();
    let out = every(&run);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(curve.join("curve.csv")).unwrap(),
        csv
    );
    // A run that kept none, with no curve yet, says how to keep them.
    std::fs::remove_dir_all(&curve).unwrap();
    let out = every(&run);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--keep-epochs"));

    // Resuming a finished run finishes at once; a new run over it is refused.
    let out = r2unet(&[
        "train",
        "--dataset",
        "synthetic",
        "--resume",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r2unet(&[
        "train",
        "--dataset",
        "synthetic",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
}

/// A `w x h` RGB fundus-like picture: a bright disc with a dark diagonal line.
fn fundus_png(path: &std::path::Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| {
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        let r = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let v = if r > 0.45 * w.min(h) as f32 {
            4
        } else if x.abs_diff(y) < 2 {
            90
        } else {
            190
        };
        image::Rgb([v, v / 2, v / 4])
    })
    .save(path)
    .unwrap();
}

#[test]
fn demo_then_predict_then_eval_with_a_tuned_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let out = r2unet(&[
        "demo",
        "--out",
        demo.to_str().unwrap(),
        "--epochs",
        "1",
        "--images",
        "3",
        "--patches-per-image",
        "24",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("where to look"), "{stdout}");
    let report = demo.join("report");
    for f in ["report.json", "report.md", "roc.png", "pr.png"] {
        assert!(report.join(f).exists(), "{f}");
    }
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("95% CI") && md.contains("F1-optimal on the training retinas"),
        "{md}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["images"], 6);
    let tuned = v["tuned"]["threshold"].as_f64().unwrap();
    assert!(tuned > 0.0 && tuned < 1.0);
    let ci = &v["fixed"]["ci"]["f1"];
    let f1 = v["fixed"]["pooled"]["f1"].as_f64().unwrap();
    assert!(ci["lo"].as_f64().unwrap() <= f1 && f1 <= ci["hi"].as_f64().unwrap());
    // Every test image has its three pictures, the probability map in 16 bits.
    let prob = image::open(report.join("images/synthetic-4294967296_prob.png")).unwrap();
    assert_eq!(prob.color(), image::ColorType::L16);
    assert_eq!((prob.width(), prob.height()), (128, 128));
    assert!(
        report
            .join("images/synthetic-4294967301_overlay.png")
            .exists()
    );
    // report.html: one page with every picture inline and the sortable table.
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    for needle in [
        "id=\"pooled\"",
        "id=\"roc\"",
        "id=\"per-image\"",
        "<tr data-id=\"synthetic-4294967301\">",
        "data-view=\"image\"",
        "data-view=\"overlay\"",
        "data:image/png;base64,iVBOR",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(!html.contains("src=\"http") && !html.contains("src=\"images/"));
    assert!(
        report
            .join("images/synthetic-4294967301_image.png")
            .exists()
    );

    // predict: a folder with a good picture of odd size and a broken file,
    // plus a missing file; the good one is written, the others reported.
    let weights = demo.join("run/best.safetensors");
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    fundus_png(&inputs.join("eye.png"), 101, 77);
    std::fs::write(inputs.join("broken.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
    let preds = tmp.path().join("preds");
    let out = r2unet(&[
        "predict",
        inputs.to_str().unwrap(),
        tmp.path().join("missing.png").to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "-o",
        preds.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.jpg") && stderr.contains("missing.png"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 3 input(s) failed"), "{stderr}");
    let prob = image::open(preds.join("eye_prob.png")).unwrap();
    assert_eq!(prob.color(), image::ColorType::L16);
    assert_eq!((prob.width(), prob.height()), (101, 77));
    let mask = image::open(preds.join("eye_mask.png"))
        .unwrap()
        .into_luma8();
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    assert!(preds.join("eye_overlay.png").exists());

    // Sliding windows with flip TTA on the same model, and bad sliding flags.
    let out = r2unet(&[
        "predict",
        inputs.join("eye.png").to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "-o",
        tmp.path().join("preds2").to_str().unwrap(),
        "--mode",
        "sliding",
        "--stride",
        "16",
        "--tta",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r2unet(&[
        "predict",
        inputs.join("eye.png").to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "-o",
        tmp.path().join("preds3").to_str().unwrap(),
        "--mode",
        "sliding",
        "--window",
        "44",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 8"));

    // eval on the synthetic test set, tuned on the synthetic training images;
    // tuning on the evaluated split is refused.
    let v = json(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        "synthetic",
        "--bootstrap",
        "50",
        "--json",
    ]);
    assert_eq!(v["tuned"]["chosen_on"], "F1-optimal on synthetic train");
    assert_eq!(v["fixed"]["ci"]["resamples"], 50);
    let out = r2unet(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        "synthetic",
        "--tune-on",
        "test",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("other images"));
}

#[test]
fn predict_uses_the_shipped_drive_weights_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    // A gzip-compressed PNG, as STARE ships its images: the stem drops both extensions.
    let plain = tmp.path().join("plain.png");
    fundus_png(&plain, 96, 80);
    let photo = tmp.path().join("photo.png.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &std::fs::read(&plain).unwrap()).unwrap();
    std::fs::write(&photo, gz.finish().unwrap()).unwrap();
    let preds = tmp.path().join("out");
    let out = r2unet(&[
        "predict",
        photo.to_str().unwrap(),
        "-o",
        preds.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("segmented 1 of 1"), "{stdout}");
    // The computed FOV zeroes the probabilities in the black corners.
    let prob = image::open(preds.join("photo_prob.png"))
        .unwrap()
        .into_luma16();
    assert_eq!(prob.get_pixel(0, 0).0[0], 0);
}

#[test]
fn predict_shards_split_the_sorted_inputs_between_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for name in ["a", "b", "c", "d", "e"] {
        fundus_png(&inputs.join(format!("{name}.png")), 40, 32);
    }
    // Three jobs of a job array, each given the inputs in another order.
    let mut written = Vec::new();
    for k in 1..=3 {
        let out = tmp.path().join(format!("out{k}"));
        let mut args = vec!["predict".to_string()];
        for name in ["e", "c", "a", "d", "b"] {
            args.push(inputs.join(format!("{name}.png")).display().to_string());
        }
        args.extend([
            "-o".into(),
            out.display().to_string(),
            "--shard".into(),
            format!("{k}/3"),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = r2unet(&args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let mut masks: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with("_mask.png"))
            .collect();
        masks.sort();
        written.push(masks);
    }
    // Every N-th of the sorted inputs from the K-th: a, d | b, e | c.
    assert_eq!(written[0], ["a_mask.png", "d_mask.png"]);
    assert_eq!(written[1], ["b_mask.png", "e_mask.png"]);
    assert_eq!(written[2], ["c_mask.png"]);
    let out = r2unet(&["predict", "x.png", "-o", "y", "--shard", "4/3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 <= K <= N"));
}

#[test]
fn the_paper_protocol_refuses_a_budget_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = r2unet(&[
        "train",
        "--dataset",
        "synthetic",
        "--protocol",
        "paper",
        "--epochs",
        "3",
        "--out",
        tmp.path().join("run").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--protocol paper fixes the budget") && stderr.contains("--epochs"),
        "{stderr}"
    );
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn export_writes_onnx_from_a_weights_file() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../weights/drive-r2unet.safetensors"
    );
    let onnx = tmp.path().join("drive.onnx");
    let out = r2unet(&[
        "export",
        "--weights",
        weights,
        "--onnx",
        "--probabilities",
        "-o",
        onnx.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ONNX opset 17, probabilities"));
    let bytes = std::fs::read(&onnx).unwrap();
    // The weights (612,369 f32 parameters, batch norm folded in) are most of it.
    assert!(bytes.len() > 2_000_000, "{}", bytes.len());
    let text = String::from_utf8_lossy(&bytes);
    for s in ["r2unet_preprocess", "Resize", "probabilities", "height"] {
        assert!(text.contains(s), "{s}");
    }
    // A weights file is already exported: without --onnx there is nothing to do.
    let out = r2unet(&["export", "--weights", weights, "-o", "x.safetensors"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--onnx"));
}

/// `reproduce --protocol loo` trains one model per image, keeps each
/// finished fold, and continues with the next unfinished one when run again.
#[test]
fn leave_one_out_continues_fold_by_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let chase = tmp.path().join("data/CHASE_DB1");
    for sub in ["images", "manual"] {
        std::fs::create_dir_all(chase.join(sub)).unwrap();
    }
    for id in ["Image_01L", "Image_01R", "Image_02L"] {
        fundus_png(&chase.join(format!("images/{id}.jpg")), 80, 72);
        image::GrayImage::from_fn(80, 72, |x, y| {
            image::Luma([if x.abs_diff(y) < 2 { 255 } else { 0 }])
        })
        .save(chase.join(format!("manual/{id}_1stHO.png")))
        .unwrap();
    }
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let no_weights = tmp.path().join("no-weights");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "reproduce",
            "--data",
            data.to_str().unwrap(),
            "--datasets",
            "chase",
            "--protocol",
            "loo",
            "--epochs",
            "1",
            "--patches-per-image",
            "4",
            "--weights-dir",
            no_weights.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ];
        a.extend_from_slice(extra);
        r2unet(&a)
    };
    let run = args(&["--max-folds", "2"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("2 of 3 folds finished"), "{stdout}");
    // The longer budget starts every fold from the longer DRIVE model:
    // refused, naming it, where the weights folder lacks it; and it is a
    // leave-one-out option only.
    let long = args(&["--budget", "long"]);
    let err = String::from_utf8_lossy(&long.stderr);
    assert!(
        !long.status.success() && err.contains("drive-r2unet-long.safetensors"),
        "{err}"
    );
    assert!(!out.join("chase-r2unet-long-loo").exists());
    let standard = r2unet(&["reproduce", "--data", "x", "--budget", "long"]);
    let err = String::from_utf8_lossy(&standard.stderr);
    assert!(
        !standard.status.success() && err.contains("--protocol loo"),
        "{err}"
    );
    // Flip TTA: folds of their own, named so; a leave-one-out option only.
    let tta = args(&["--tta", "--max-folds", "1"]);
    let stdout = String::from_utf8_lossy(&tta.stdout);
    assert!(
        tta.status.success(),
        "{}",
        String::from_utf8_lossy(&tta.stderr)
    );
    assert!(
        stdout.contains("r2unet (flip TTA) leave-one-out: 1 of 3 folds finished"),
        "{stdout}"
    );
    assert!(out.join("chase-r2unet-tta-loo/fold-00_prob.png").is_file());
    let standard = r2unet(&["reproduce", "--data", "x", "--tta"]);
    let err = String::from_utf8_lossy(&standard.stderr);
    assert!(
        !standard.status.success() && err.contains("--protocol loo") && err.contains("eval"),
        "{err}"
    );
    let folds = out.join("chase-r2unet-loo");
    let first = std::fs::read(folds.join("fold-00.json")).unwrap();
    assert!(!folds.join("fold-02.json").exists());
    let run = args(&[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("3 of 3 folds finished"), "{stdout}");
    assert!(stdout.contains("| 2 | Image_02L |"), "{stdout}");
    // Finished folds are not trained again.
    assert_eq!(std::fs::read(folds.join("fold-00.json")).unwrap(), first);
    assert!(folds.join("summary.json").is_file());
    // Then one model on all three images, for new images, exported once.
    let all = no_weights.join("chase-r2unet-all.safetensors");
    assert!(all.is_file(), "{stdout}");
    assert!(stdout.contains("chase-r2unet-all.safetensors"), "{stdout}");
    let run_all = out.join("runs/chase-r2unet-loo/all/config.json");
    let config = std::fs::read_to_string(run_all).unwrap();
    assert!(config.contains("\"all_images\": true"), "{config}");
    // Evaluating it on the set it trained on says the numbers are not held out.
    let eval = r2unet(&[
        "eval",
        "--weights",
        all.to_str().unwrap(),
        "--dataset",
        "chase",
        "--data",
        chase.to_str().unwrap(),
        "--leave-out",
        "0",
        "--tune-on",
        "none",
        "--bootstrap",
        "0",
    ]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(String::from_utf8_lossy(&eval.stderr).contains("not held out"));
    let both = r2unet(&[
        "train",
        "--dataset",
        "chase",
        "--data",
        chase.to_str().unwrap(),
        "--all-images",
        "--leave-out",
        "1",
        "--out",
        "x",
    ]);
    assert!(!both.status.success());
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        err.contains("--all-images") && err.contains("--leave-out"),
        "{err}"
    );
    // A fold beyond the set is refused, naming the fold and the set's size.
    let bad = r2unet(&[
        "eval",
        "--weights",
        "../../weights/drive-r2unet.safetensors",
        "--dataset",
        "chase",
        "--data",
        chase.to_str().unwrap(),
        "--leave-out",
        "3",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("fold 3") && err.contains("3 images"),
        "{err}"
    );
}

/// `reproduce --train` on a tiny lung set: a row per model, their paired
/// comparison, an example page and the report folders.
#[test]
fn reproduce_trains_and_tables_two_models() {
    let tmp = tempfile::tempdir().unwrap();
    let lung = tmp.path().join("data/LUNG");
    for sub in ["2d_images", "2d_masks"] {
        std::fs::create_dir_all(lung.join(sub)).unwrap();
    }
    // Slices 0000-0186 train, 0187-0266 test (the paper's split by ID).
    for (i, id) in ["ID_0000_Z_0001", "ID_0001_Z_0002", "ID_0190_Z_0003"]
        .into_iter()
        .enumerate()
    {
        let inside = |x: u32, y: u32| (8 + i as u32..24).contains(&x) && (6..26).contains(&y);
        // int16 Hounsfield units as the LUNG set stores them: lung -850,
        // tissue 40.
        let hu: Vec<i16> = (0..32 * 32)
            .map(|p| if inside(p % 32, p / 32) { -850 } else { 40 })
            .collect();
        let file = std::fs::File::create(lung.join(format!("2d_images/{id}.tif"))).unwrap();
        tiff::encoder::TiffEncoder::new(file)
            .unwrap()
            .write_image::<tiff::encoder::colortype::GrayI16>(32, 32, &hu)
            .unwrap();
        image::GrayImage::from_fn(32, 32, |x, y| image::Luma([u8::from(inside(x, y))]))
            .save(lung.join(format!("2d_masks/{id}.tif")))
            .unwrap();
    }
    let out = tmp.path().join("out");
    let stdout = stdout_of(&[
        "reproduce",
        "--data",
        tmp.path().join("data").to_str().unwrap(),
        "--datasets",
        "lung",
        "--models",
        "unet,r2unet",
        "--train",
        "--epochs",
        "1",
        "--bootstrap",
        "50",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(stdout.contains("| lung | unet | **"), "{stdout}");
    assert!(stdout.contains("| lung | r2unet | **"), "{stdout}");
    assert!(stdout.contains("| lung | unet | r2unet | 1 |"), "{stdout}");
    assert!(stdout.contains("trained 1 epochs"), "{stdout}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 2);
    assert_eq!(results[0]["images"], 1);
    for f in [
        "results.md",
        "comparisons.json",
        "examples.md",
        "examples/lung-r2unet.png",
        "lung-unet/report.md",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // Shipped weights with a longer-budget model beside the default one:
    // both rows, compared with each other.
    let weights = tmp.path().join("weights");
    std::fs::create_dir_all(&weights).unwrap();
    let run_dir = out.join("runs/lung-r2unet");
    for name in ["lung-r2unet", "lung-r2unet-long"] {
        let file = weights.join(format!("{name}.safetensors"));
        stdout_of(&[
            "export",
            "--run",
            run_dir.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ]);
    }
    // `predict` reads a CT model's slice as its loader did (raw values, the
    // window recorded in the weights), and refuses formats that hold no HU.
    let model = weights.join("lung-r2unet.safetensors");
    let predicted = tmp.path().join("predicted");
    stdout_of(&[
        "predict",
        "--weights",
        model.to_str().unwrap(),
        lung.join("2d_images/ID_0190_Z_0003.tif").to_str().unwrap(),
        "-o",
        predicted.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    // A slice with no value below -500 HU is segmented with a warning.
    let offset = tmp.path().join("offset.tif");
    image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(32, 32, image::Luma([1064]))
        .save(&offset)
        .unwrap();
    let predict = |input: &std::path::Path| {
        r2unet(&[
            "predict",
            "--weights",
            model.to_str().unwrap(),
            input.to_str().unwrap(),
            "-o",
            predicted.to_str().unwrap(),
        ])
    };
    let out = predict(&offset);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("offset.tif: no value below -500"),
        "{err}"
    );
    let png = tmp.path().join("slice.png");
    image::GrayImage::new(32, 32).save(&png).unwrap();
    let out = predict(&png);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("slice.png") && err.contains("Hounsfield"),
        "{err}"
    );

    let shipped = tmp.path().join("shipped");
    let stdout = stdout_of(&[
        "reproduce",
        "--data",
        tmp.path().join("data").to_str().unwrap(),
        "--datasets",
        "lung",
        "--weights-dir",
        weights.to_str().unwrap(),
        "--bootstrap",
        "50",
        "--out",
        shipped.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(stdout.contains("| lung | r2unet | **"), "{stdout}");
    assert!(stdout.contains("| lung | r2unet-long | **"), "{stdout}");
    assert!(
        stdout.contains("| lung | r2unet | r2unet-long | 1 |"),
        "{stdout}"
    );
    assert!(shipped.join("lung-r2unet-long/report.md").is_file());
    let read = |p: std::path::PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    assert!(
        read(predicted.join("ID_0190_Z_0003_prob.png"))
            == read(shipped.join("lung-r2unet/images/ID_0190_Z_0003_prob.png")),
        "predict's probabilities differ from eval's"
    );
}
