//! Loaders on the real datasets in `../shared/data` (skipped with a printed
//! reason where that folder is absent). Expected counts: the standard splits
//! of `../shared/data/README.md`.

use std::path::PathBuf;

use r2unet::data::check::check;
use r2unet::data::{DatasetKind, FovChoice, FovSource, LoadOptions, Split};

/// `../shared/data/NAME` from the repository root, if present.
pub fn shared(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} not found (real-data tests need ../shared/data)",
            dir.display()
        );
        None
    }
}

#[test]
fn drive_has_20_training_and_20_test_images_with_given_fov() {
    let Some(dir) = shared("DRIVE") else { return };
    let report = check(DatasetKind::Drive, &dir, &LoadOptions::default()).unwrap();
    for split in ["train", "test"] {
        let s = &report.splits[split];
        assert_eq!(s.count, 20, "{split}");
        assert_eq!((s.width, s.height), ([565, 565], [584, 584]));
        assert_eq!(s.channels, vec![3]);
        assert_eq!(s.label_values, vec![0, 1]);
        assert_eq!(s.fov_source, "given");
        // About 12-13% of FOV pixels are vessels in DRIVE's first-observer labels.
        assert!(
            (0.10..0.15).contains(&s.foreground_fraction),
            "{}",
            s.foreground_fraction
        );
    }
    // The palette GIFs of the second observer decode to 0/1 too.
    let opts = LoadOptions {
        annotator: r2unet::data::Annotator::Second,
        ..LoadOptions::default()
    };
    let test = DatasetKind::Drive.load(&dir, Split::Test, &opts).unwrap();
    assert_eq!(test.len(), 20);
    let fg = test[0].label.count() as f64 / test[0].fov.count() as f64;
    assert!((0.05..0.25).contains(&fg), "{fg}");
    assert!(
        DatasetKind::Drive
            .entries(&dir, Split::Train, &opts)
            .is_err()
    );
}

#[test]
fn stare_reads_gzip_ppm_with_soares_or_computed_fov() {
    let Some(dir) = shared("STARE") else { return };
    let train = DatasetKind::Stare
        .load(&dir, Split::Train, &LoadOptions::default())
        .unwrap();
    let test = DatasetKind::Stare
        .entries(&dir, Split::Test, &LoadOptions::default())
        .unwrap();
    assert_eq!((train.len(), test.len()), (10, 10));
    assert_eq!(train[0].id, "im0001");
    assert_eq!(test[0].id, "im0162");
    assert_eq!((train[0].image.width, train[0].image.height), (700, 605));
    assert_eq!(train[0].fov_source, FovSource::Given);
    let computed = LoadOptions {
        fov: FovChoice::Computed,
        ..LoadOptions::default()
    };
    let s = &DatasetKind::Stare
        .entries(&dir, Split::Train, &computed)
        .unwrap()[0]
        .load(&computed)
        .unwrap()[0];
    assert_eq!(s.fov_source, FovSource::Computed);
}

#[test]
fn ph2_has_140_20_40_and_reads_the_rgb_mask() {
    let Some(dir) = shared("PH2") else { return };
    let opts = LoadOptions::default();
    let count = |split| DatasetKind::Ph2.entries(&dir, split, &opts).unwrap().len();
    assert_eq!(
        (count(Split::Train), count(Split::Val), count(Split::Test)),
        (140, 20, 40)
    );
    let imd002 = DatasetKind::Ph2
        .entries(&dir, Split::Train, &opts)
        .unwrap()
        .into_iter()
        .find(|e| e.id == "IMD002")
        .expect("IMD002 is in the training split");
    let s = &imd002.load(&opts).unwrap()[0];
    assert!(s.label.count() > 0 && s.label.count() < s.label.data.len());
}

#[test]
fn lung_is_windowed_hu_with_binary_masks() {
    let Some(dir) = shared("LUNG") else { return };
    let opts = LoadOptions::default();
    let train = DatasetKind::Lung
        .entries(&dir, Split::Train, &opts)
        .unwrap();
    let test = DatasetKind::Lung.entries(&dir, Split::Test, &opts).unwrap();
    // The paper's 70/30 by slice ID: ID_0000..ID_0186 train, ID_0187..ID_0266 test.
    assert_eq!((train.len(), test.len()), (187, 80));
    assert_eq!(train.last().unwrap().id, "ID_0186_Z_0102");
    assert!(test[0].id.starts_with("ID_0187_"), "{}", test[0].id);
    assert!(test.iter().any(|e| e.id == r2unet::data::lung::QUIRK_SLICE));
    let s = &train[0].load(&opts).unwrap()[0];
    assert_eq!(
        (s.image.width, s.image.height, s.image.channels),
        (512, 512, 1)
    );
    // The default window maps -1000..400 HU linearly onto 0..1, clamping outside.
    let raw = r2unet::data::io::read_ct(&train[0].image, opts.limits).unwrap();
    for (hu, v) in raw.data.iter().zip(&s.image.data) {
        let expected = (hu.clamp(-1000.0, 400.0) + 1000.0) / 1400.0;
        assert!((v - expected).abs() < 1e-6, "{hu} HU -> {v}");
    }
    // manifest.csv: ID_0000_Z_0142.tif spans -932..1054.
    let (lo, hi) = raw
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((lo, hi), (-932.0, 1054.0), "{}", train[0].id);
    let fg = s.label.count() as f64 / s.label.data.len() as f64;
    // SOURCE.txt: lung fraction per slice 0.083 .. 0.573.
    assert!((0.08..0.58).contains(&fg), "{fg}");
}

/// Dice of the computed FOV against the shipped masks (DRIVE `mask/`, STARE
/// Soares masks), every image of both splits; the goal is >= 0.98.
#[test]
fn computed_fov_agrees_with_the_given_masks() {
    use r2unet::data::fov::{compute_fov, dice};
    for (name, kind) in [("DRIVE", DatasetKind::Drive), ("STARE", DatasetKind::Stare)] {
        let Some(dir) = shared(name) else { return };
        let mut scores = Vec::new();
        for split in [Split::Train, Split::Test] {
            for s in kind.load(&dir, split, &LoadOptions::default()).unwrap() {
                scores.push(dice(&compute_fov(&s.image), &s.fov));
            }
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let min = scores.iter().copied().fold(1.0, f64::min);
        eprintln!(
            "{name}: computed vs given FOV Dice mean {mean:.4}, min {min:.4} over {} images",
            scores.len()
        );
        assert!(
            mean >= 0.98 && min >= 0.95,
            "{name}: mean {mean}, min {min}"
        );
    }
}

/// A single pass over the memory budget goes by tiles: on DRIVE image 01 the
/// tiled probabilities equal the single pass's within 1e-4.
#[test]
fn tiled_single_pass_equals_the_single_pass_on_drive() {
    use r2unet::infer::Inference;
    use r2unet::segment::{FovMode, TrainedModel};
    let Some(dir) = shared("DRIVE") else { return };
    let device = r2unet::device::DeviceChoice::Cpu.device().unwrap();
    let model = TrainedModel::shipped("drive", &device).unwrap();
    let image = r2unet::data::io::read_image(
        &dir.join("test/images/01_test.tif"),
        r2unet::data::ReadLimits::default(),
    )
    .unwrap();
    let run = |inference: Inference| {
        model
            .segment(
                "01",
                image.clone(),
                &FovMode::Whole,
                0.5,
                &inference,
                &device,
            )
            .unwrap()
            .probabilities
    };
    let whole = run(Inference::default());
    // The single pass (568x584 padded, 384 bytes per pixel: 127 MB) is over
    // 64 MiB: 6x6 tiles of 112x112 with 152-pixel margins.
    assert!(
        r2unet::infer::single_pass_bytes(&model.model.config, 568 * 584) > 64 << 20,
        "the budget below forces tiles"
    );
    let tiled = run(Inference {
        max_memory: 64 << 20,
        ..Inference::default()
    });
    let worst = whole
        .iter()
        .zip(&tiled)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("tiled vs single pass on DRIVE 01: largest difference {worst:e}");
    assert!(worst <= 1e-4, "{worst}");
}

/// A fundus photograph of another scale is brought to the training images'
/// FOV diameter: the DRIVE model on CHASE_DB1's Image_11L (FOV about 1.7
/// times DRIVE's) scores a far higher AUC rescaled than at its own size, and
/// the map comes back at the image's size.
#[test]
fn chase_images_are_segmented_at_the_drive_scale() {
    use r2unet::data::{DatasetKind, LoadOptions, Split};
    use r2unet::eval::confusion::Metrics;
    use r2unet::eval::evaluate::probability_map;
    use r2unet::infer::{Inference, Rescale};
    use r2unet::segment::TrainedModel;
    let Some(dir) = shared("CHASE_DB1") else {
        return;
    };
    let device = r2unet::device::DeviceChoice::Cpu.device().unwrap();
    let model = TrainedModel::shipped("drive", &device).unwrap();
    let scale = |s: &r2unet::data::Sample| model.preprocess.fov_scale(&s.fov);
    let entry = DatasetKind::Chase
        .entries(&dir, Split::Test, &LoadOptions::default())
        .unwrap()
        .remove(0);
    let sample = entry.load(&LoadOptions::default()).unwrap().remove(0);
    let factor = scale(&sample).expect("CHASE_DB1 is rescaled");
    assert!((0.5..0.7).contains(&factor), "{factor}");
    let auc = |rescale| {
        let inference = Inference {
            rescale,
            ..Inference::default()
        };
        let p = probability_map(
            &model.model,
            &model.preprocess,
            &inference,
            &sample,
            &device,
        )
        .unwrap();
        assert_eq!(p.len(), sample.label.data.len());
        Metrics::evaluate(&p, &sample.label.data, Some(&sample.fov.data), 0.5)
            .unwrap()
            .auc
            .unwrap()
    };
    let (native, rescaled) = (auc(Rescale::None), auc(Rescale::Auto));
    eprintln!(
        "DRIVE model on CHASE_DB1 {}: AUC {native:.4} at its own size, {rescaled:.4} resized by {factor:.3}",
        sample.id
    );
    assert!(
        rescaled > native + 0.03 && rescaled > 0.95,
        "{native} {rescaled}"
    );
}
