//! Training: one step lowers the loss, a tiny model overfits four patches,
//! R2U-Net on the synthetic retina does not collapse to background, and an
//! interrupted run resumed from its checkpoint ends with the same weights.

use std::sync::atomic::{AtomicBool, Ordering};

use super::max_abs_diff;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use r2unet::data::augment::Augment;
use r2unet::data::patches::{PatchBatcher, PatchConfig, PatchDataset, sample_patches};
use r2unet::data::preprocess::retina_protocol;
use r2unet::data::synthetic::SyntheticRetina;
use r2unet::data::{DatasetKind, LoadOptions};
use r2unet::eval::{Confusion, ZeroDivision};
use r2unet::model::{Architecture, Preset, load_model};
use r2unet::train::loss::bce_with_logits;
use r2unet::train::prepare::held_out_samples;
use r2unet::train::{Event, LossKind, Outcome, RunDir, RunState, Schedule, TrainConfig, Trainer};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;

/// Four 16x16 preprocessed synthetic patches with vessels, as one batch.
fn four_patches(device: &Device) -> (Tensor<4>, Tensor<4>) {
    let generator = SyntheticRetina {
        width: 64,
        height: 64,
        ..SyntheticRetina::default()
    };
    let mut samples = generator.dataset(2, 0);
    let mut images: Vec<_> = samples.iter().map(|s| s.image.clone()).collect();
    retina_protocol(&mut images).unwrap();
    for (s, img) in samples.iter_mut().zip(images) {
        s.image = img;
    }
    let cfg = PatchConfig {
        size: 16,
        per_image: 2,
        inside_fov: true,
        val_fraction: 0.0,
        seed: 3,
    };
    let (refs, _) = sample_patches(&samples, &cfg).unwrap();
    let set = PatchDataset::new(samples.into(), refs, 16, Augment::NONE, 0);
    let items = (0..4).map(|i| set.get(i).unwrap()).collect();
    let batch = PatchBatcher {
        size: 16,
        channels: 1,
    }
    .batch(items, device);
    (batch.images, batch.labels)
}

#[test]
fn one_adam_step_lowers_the_loss() {
    let device = Device::flex().autodiff();
    let (x, y) = four_patches(&device);
    let model = Preset::Retina
        .config(Architecture::R2unet)
        .with_widths(vec![4, 8])
        .init(&device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let before = bce_with_logits(model.forward(x.clone()), y.clone(), None);
    let b: f32 = before.clone().into_scalar();
    let model = optim.step(
        1e-2,
        model.clone(),
        GradientsParams::from_grads(before.backward(), &model),
    );
    let a: f32 = bce_with_logits(model.forward(x), y, None).into_scalar();
    assert!(a < b, "loss {b} -> {a}");
}

#[test]
fn a_small_r2unet_overfits_four_patches() {
    let device = Device::flex().autodiff();
    let (x, y) = four_patches(&device);
    let mut model = Preset::Retina
        .config(Architecture::R2unet)
        .with_widths(vec![8, 16])
        .init(&device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    for _ in 0..250 {
        let loss = bce_with_logits(model.forward(x.clone()), y.clone(), None);
        model = optim.step(
            1e-2,
            model.clone(),
            GradientsParams::from_grads(loss.backward(), &model),
        );
    }
    // Eval mode (running statistics), as a user would predict.
    let eval = model.valid();
    let probs: Vec<f32> = burn::tensor::activation::sigmoid(eval.forward(x.without_autodiff()))
        .into_data()
        .try_into_vec()
        .unwrap();
    let labels: Vec<u8> = y
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    let f1 = Confusion::from_probs(&probs, &labels, None, 0.5).f1(ZeroDivision::One);
    assert!(f1 > 0.95, "F1 after overfitting: {f1}");
}

fn tiny_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        dataset: DatasetKind::Drive,
        data: None,
        synthetic_images: 4,
        load: LoadOptions::default(),
        model: Preset::Retina
            .config(Architecture::R2unet)
            .with_widths(vec![4, 8])
            .with_patch_size(16),
        epochs,
        patches_per_image: 12,
        patch_size: 16,
        batch_size: 8,
        lr: 1e-2,
        schedule: Schedule::Cosine,
        loss: LossKind::Bce,
        pos_weight: None,
        val_fraction: 0.25,
        augment: true,
        seed: 5,
        checkpoint_minutes: 0.0,
        init: None,
        all_images: false,
        keep_epochs: false,
        precision: Default::default(),
    }
}

fn run_to_end(
    config: TrainConfig,
    dir: &std::path::Path,
    stop_at: Option<(usize, usize)>,
) -> Outcome {
    let stop = AtomicBool::new(false);
    let trainer = Trainer::new(config, RunDir(dir.to_path_buf()), &Device::flex()).unwrap();
    trainer
        .run(&stop, &mut |e| {
            if let (Event::Step { epoch, step, .. }, Some(at)) = (e, stop_at)
                && (epoch, step) == at
            {
                stop.store(true, Ordering::Relaxed);
            }
        })
        .unwrap()
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (straight, broken) = (tmp.path().join("straight"), tmp.path().join("broken"));
    let Outcome::Finished(done) = run_to_end(tiny_config(2), &straight, None) else {
        panic!("the straight run finishes")
    };
    assert_eq!(done.history.len(), 2);
    // The same seed gives the same run: initialisation, patches and augmentation are seeded.
    let again = tmp.path().join("again");
    run_to_end(tiny_config(2), &again, None);
    let first = std::fs::read(straight.join("last.safetensors")).unwrap();
    assert!(
        first == std::fs::read(again.join("last.safetensors")).unwrap(),
        "same seed, other weights"
    );
    // Stopped after step 2 of epoch 1 (mid-epoch), then resumed in a new Trainer.
    let outcome = run_to_end(tiny_config(2), &broken, Some((1, 2)));
    assert!(matches!(outcome, Outcome::Interrupted(ref s) if s.epoch == 0 && s.step_in_epoch == 2));
    let stop = AtomicBool::new(false);
    let resumed = Trainer::resume(RunDir(broken.clone()), &Device::flex()).unwrap();
    let Outcome::Finished(state) = resumed.run(&stop, &mut |_| {}).unwrap() else {
        panic!("the resumed run finishes")
    };
    assert_eq!(state.steps, done.steps);
    // Bitwise: the flex CPU backend is deterministic for a fixed thread count.
    let a = std::fs::read(straight.join("last.safetensors")).unwrap();
    let b = std::fs::read(broken.join("last.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run");
    assert_eq!(state.history[1].val_auc, done.history[1].val_auc);
    // The run folder holds everything a user needs.
    for f in [
        "config.json",
        "state.json",
        "metrics.csv",
        "best.safetensors",
        "best.json",
        "last.json",
        "curves.png",
    ] {
        assert!(broken.join(f).exists(), "{f}");
    }
    // The committed checkpoint's files, and nothing older or half-written.
    let stem = state.checkpoint.clone().expect("named checkpoint");
    assert_eq!(stem, format!("ckpt-{:08}", state.steps));
    let mut names: Vec<String> = std::fs::read_dir(&broken)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ckpt-") || n.ends_with(".tmp"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{stem}.optim"), format!("{stem}.safetensors")]
    );
    // Starting a new run over an existing one is refused.
    let err = Trainer::new(tiny_config(2), RunDir(broken), &Device::flex())
        .err()
        .unwrap();
    assert!(err.to_string().contains("already holds a run"), "{err}");
}

/// A finished one-epoch run with the bytes of its checkpoint, to show later
/// that a failed second epoch changed nothing.
struct Snapshot {
    _tmp: tempfile::TempDir,
    run: RunDir,
    done: RunState,
    last: Vec<u8>,
    state: Vec<u8>,
}

impl Snapshot {
    fn take() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let Outcome::Finished(done) = run_to_end(tiny_config(1), &dir, None) else {
            panic!("the first epoch finishes")
        };
        let run = RunDir(dir);
        Snapshot {
            last: std::fs::read(run.last()).unwrap(),
            state: std::fs::read(run.state()).unwrap(),
            _tmp: tmp,
            run,
            done,
        }
    }

    /// A second epoch with `change` applied to the config, resumed.
    fn resume_with(&self, change: impl FnOnce(&mut TrainConfig)) -> Trainer {
        let mut config = self.run.read_config().unwrap();
        config.epochs = 2;
        change(&mut config);
        self.run.write_config(&config).unwrap();
        Trainer::resume(self.run.clone(), &Device::flex()).unwrap()
    }

    /// The checkpoint is byte-identical to the snapshot and still loads.
    fn assert_unchanged(&self) {
        let run = &self.run;
        assert!(
            std::fs::read(run.last()).unwrap() == self.last,
            "last.safetensors changed"
        );
        assert_eq!(std::fs::read(run.state()).unwrap(), self.state);
        let kept = run.read_state().unwrap();
        assert_eq!(
            (kept.steps, kept.checkpoint),
            (self.done.steps, self.done.checkpoint.clone())
        );
        load_model(&run.last(), &Device::flex()).unwrap();
    }
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let snap = Snapshot::take();
    // A positive weight of 1e38 times a BCE term near 0.7, summed over
    // thousands of pixels, overflows f32 to +inf.
    let trainer = snap.resume_with(|c| c.pos_weight = Some(1e38));
    let stop = AtomicBool::new(false);
    let msg = trainer
        .run(&stop, &mut |_| {})
        .expect_err("the run stops")
        .to_string();
    assert!(
        msg.contains("loss became inf at epoch 2, step 1") && msg.contains("last good checkpoint"),
        "{msg}"
    );
    snap.assert_unchanged();
}

#[test]
fn a_full_disk_during_a_checkpoint_is_an_error_and_keeps_the_previous_one() {
    if !std::path::Path::new("/dev/full").exists() {
        println!("skipped: no /dev/full on this system to simulate a full disk");
        return;
    }
    let snap = Snapshot::take();
    // After `resume`, which clears leftover temporary files, the temporary
    // file of the next checkpoint's model becomes /dev/full: every write to
    // it fails with ENOSPC, as on a full disk.
    let trainer = snap.resume_with(|_| {});
    let next = format!("ckpt-{:08}.safetensors", 2 * snap.done.steps);
    // `run` writes its checkpoints on this thread.
    let temp = r2unet::atomic::temp_path(&snap.run.0.join(&next), "").unwrap();
    std::os::unix::fs::symlink("/dev/full", &temp).unwrap();
    let stop = AtomicBool::new(false);
    let msg = trainer
        .run(&stop, &mut |_| {})
        .expect_err("the checkpoint write fails")
        .to_string();
    assert!(
        msg.contains(&next) && msg.contains("No space left on device"),
        "{msg}"
    );
    snap.assert_unchanged();
    assert!(!temp.exists());
}

#[test]
fn r2unet_on_the_synthetic_retina_does_not_collapse_to_background() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        synthetic_images: 6,
        patches_per_image: 160,
        batch_size: 16,
        epochs: 3,
        lr: 5e-3,
        model: Preset::Retina
            .config(Architecture::R2unet)
            .with_widths(vec![8, 16, 32])
            .with_patch_size(32),
        patch_size: 32,
        ..tiny_config(3)
    };
    let Outcome::Finished(state) = run_to_end(config, tmp.path(), None) else {
        panic!()
    };
    let last = state.history.last().unwrap();
    let (auc, f1) = (last.val_auc.unwrap(), last.val_f1.unwrap());
    eprintln!("synthetic R2U-Net: val AUC {auc:.4}, F1 {f1:.4}");
    assert!(auc > 0.85, "AUC {auc}");
    assert!(f1 > 0.3, "F1 {f1} (all-background predictions give 0)");
}

#[test]
fn bad_training_settings_and_folders_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = TrainConfig {
        lr: 0.0,
        ..tiny_config(1)
    };
    assert!(
        Trainer::new(bad, RunDir(tmp.path().join("a")), &Device::flex())
            .err()
            .unwrap()
            .to_string()
            .contains("learning rate")
    );
    let odd = TrainConfig {
        patch_size: 15,
        ..tiny_config(1)
    };
    assert!(Trainer::new(odd, RunDir(tmp.path().join("b")), &Device::flex()).is_err());
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Trainer::new(tiny_config(1), RunDir(file.join("run")), &Device::flex())
        .err()
        .unwrap();
    assert!(err.to_string().contains("file"), "{err}");
    let err = Trainer::resume(RunDir(tmp.path().join("none")), &Device::flex())
        .err()
        .unwrap();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn whole_image_tasks_train_on_resized_rgb_images() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lesions");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::create_dir_all(data.join("masks")).unwrap();
    for i in 0..6u32 {
        // A dark "lesion" disc of radius 6 + i on skin-coloured RGB, 40x30.
        let inside = |x: u32, y: u32| {
            (x as f32 - 20.0).powi(2) + (y as f32 - 15.0).powi(2) < ((6 + i) as f32).powi(2)
        };
        image::RgbImage::from_fn(40, 30, |x, y| {
            if inside(x, y) {
                image::Rgb([90, 50, 40])
            } else {
                image::Rgb([220, 170, 150])
            }
        })
        .save(data.join(format!("images/case{i}.jpg")))
        .unwrap();
        image::GrayImage::from_fn(40, 30, |x, y| {
            image::Luma([if inside(x, y) { 255 } else { 0 }])
        })
        .save(data.join(format!("masks/case{i}.png")))
        .unwrap();
    }
    let config = TrainConfig {
        dataset: DatasetKind::Folder,
        data: Some(data),
        patch_size: 32,
        model: Preset::Retina
            .config(Architecture::Unet)
            .with_widths(vec![4, 8])
            .with_patch_size(32),
        batch_size: 2,
        val_fraction: 0.34,
        ..tiny_config(2)
    };
    // The images the run validates on, whole: 2 of the 6 (round(6 x 0.34)),
    // the same ones each time.
    let held_out = held_out_samples(&config).unwrap();
    let ids: Vec<&str> = held_out.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("case")), "{ids:?}");
    let again = held_out_samples(&config).unwrap();
    assert_eq!(again.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ids);
    // A retina run holds out patches, not images: refused, saying so.
    let err = held_out_samples(&tiny_config(1)).unwrap_err().to_string();
    assert!(err.contains("patches of every training image"), "{err}");
    let Outcome::Finished(state) = run_to_end(config, &tmp.path().join("run"), None) else {
        panic!()
    };
    assert_eq!(
        state.preprocess,
        r2unet::model::Preprocess::Resize {
            size: 32,
            hu_window: None
        }
    );
    assert_eq!(state.history.len(), 2);
    let model =
        r2unet::model::load_model(&tmp.path().join("run/best.safetensors"), &Device::flex())
            .unwrap();
    assert_eq!(
        model.config.in_channels, 3,
        "RGB images make a 3-channel model"
    );
}

/// The convolution weights of a saved model, flattened in visiting order.
fn conv_weights(path: &std::path::Path) -> Vec<f32> {
    let model = load_model(path, &Device::flex()).unwrap();
    model.enc[0].layers[0]
        .conv
        .weight
        .val()
        .into_data()
        .try_into_vec()
        .unwrap()
}

#[test]
fn a_run_started_from_weights_continues_from_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, tuned, fresh) = (
        tmp.path().join("base"),
        tmp.path().join("tuned"),
        tmp.path().join("fresh"),
    );
    run_to_end(tiny_config(1), &base, None);
    let start = base.join("last.safetensors");
    // A learning rate so small that Adam's steps vanish: the weights stay the start's.
    let mut config = tiny_config(1);
    config.lr = 1e-30;
    config.seed = 9;
    config.init = Some(start.clone());
    run_to_end(config.clone(), &tuned, None);
    let (w0, w1) = (
        conv_weights(&start),
        conv_weights(&tuned.join("last.safetensors")),
    );
    let moved = max_abs_diff(&w0, &w1);
    assert!(moved < 1e-12, "weights moved by {moved} from the start");
    // The same run without `init` starts elsewhere (seed 9's random weights).
    config.init = None;
    run_to_end(config, &fresh, None);
    let w2 = conv_weights(&fresh.join("last.safetensors"));
    assert!(w0.iter().zip(&w2).any(|(a, b)| (a - b).abs() > 1e-3));
    // Weights that do not fit the model are refused, naming the tensor.
    let mut wide = tiny_config(1);
    wide.model = wide.model.with_widths(vec![8, 16]);
    wide.init = Some(start);
    let stop = AtomicBool::new(false);
    let err = Trainer::new(wide, RunDir(tmp.path().join("wide")), &Device::flex())
        .unwrap()
        .run(&stop, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("enc.0"), "{err}");
}

#[test]
fn data_parallel_training_on_two_cpu_replicas_learns_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let two = [Device::flex(), Device::flex()];
    let run = |dir: &std::path::Path, resume: bool, stop_at: Option<(usize, usize)>| {
        let stop = AtomicBool::new(false);
        let trainer = if resume {
            Trainer::resume(RunDir(dir.to_path_buf()), &Device::flex())
        } else {
            Trainer::new(tiny_config(3), RunDir(dir.to_path_buf()), &Device::flex())
        };
        trainer
            .unwrap()
            .on_devices(&two)
            .unwrap()
            .run(&stop, &mut |e| {
                if let (Event::Step { epoch, step, .. }, Some(at)) = (e, stop_at)
                    && (epoch, step) == at
                {
                    stop.store(true, Ordering::Relaxed);
                }
            })
            .unwrap()
    };
    let dir = tmp.path().join("dp");
    let Outcome::Finished(state) = run(&dir, false, None) else {
        panic!("not finished")
    };
    let losses: Vec<f64> = state.history.iter().map(|r| r.train_loss).collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[2] < losses[0], "the loss did not fall: {losses:?}");
    assert!(
        state.best_auc.is_some_and(|a| a > 0.5),
        "{:?}",
        state.best_auc
    );
    // Stopped mid-epoch and resumed on the same devices, it ends where the straight run did.
    let broken = tmp.path().join("broken");
    assert!(matches!(
        run(&broken, false, Some((2, 2))),
        Outcome::Interrupted(_)
    ));
    let Outcome::Finished(resumed) = run(&broken, true, None) else {
        panic!("not finished")
    };
    assert_eq!(resumed.steps, state.steps);
    let (a, b) = (
        conv_weights(&dir.join("last.safetensors")),
        conv_weights(&broken.join("last.safetensors")),
    );
    let diff = max_abs_diff(&a, &b);
    assert!(diff < 1e-5, "resumed weights differ by {diff}");
    // More replicas than patches per batch are refused.
    let nine = vec![Device::flex(); 9];
    let err = Trainer::new(
        tiny_config(1),
        RunDir(tmp.path().join("nine")),
        &Device::flex(),
    )
    .unwrap()
    .on_devices(&nine)
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("9 devices for batches of 8"), "{err}");
}
