//! The training loop: Adam on patches (or whole images) with per-epoch
//! validation, checkpoints and resume.
//!
//! Batches come from Burn's `Dataset` + `Batcher` types, but the loop draws its
//! own seeded permutation per epoch instead of using Burn's `DataLoader` or
//! `Learner`: resuming bit-exactly needs the sampler position (epoch, step),
//! which those do not expose, and the validation metrics (AUC inside the FOV)
//! are our own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::checkpoint::{EpochRecord, RunDir, RunState};
use super::config::{LossKind, TrainConfig};
use super::loss::{bce_with_logits, dice_with_logits};
use super::parallel::{shard_ranges, sharded_gradients};
use super::prepare::{patch_config, prepare, training_samples, with_ct_window};
use crate::data::augment::Augment;
use crate::data::patches::{PatchBatch, PatchBatcher, PatchDataset, sample_patches};
use crate::error::{Error, Result};
use crate::eval::{Confusion, RocAccumulator, ZeroDivision};
use crate::model::Preprocess;
use crate::model::{UNet, load_weights};

/// What the loop reports to whoever drives it (the CLI prints it).
#[derive(Debug, Clone)]
pub enum Event {
    /// Data is ready: training and validation patch counts, channels.
    Ready {
        /// Training patches per epoch.
        train: usize,
        /// Validation patches.
        val: usize,
        /// Model input channels.
        channels: usize,
    },
    /// An optimizer step finished.
    Step {
        /// Epoch, from 1.
        epoch: usize,
        /// Step within the epoch, from 1.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// This step's loss.
        loss: f64,
        /// Training patches per second so far this epoch.
        patches_per_s: f64,
    },
    /// An epoch finished and was checkpointed.
    Epoch(EpochRecord),
    /// The stop flag was raised; a checkpoint was written.
    Interrupted,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done.
    Finished(RunState),
    /// Stopped by the stop flag after writing a checkpoint.
    Interrupted(RunState),
}

/// A training run in a folder: fresh ([`Trainer::new`]) or resumed ([`Trainer::resume`]).
pub struct Trainer {
    config: TrainConfig,
    dir: RunDir,
    device: Device,
    /// Data-parallel replicas' devices (autodiff), the main device first; one
    /// entry when training on one device.
    devices: Vec<Device>,
    resume: bool,
}

/// Whether the run's precision can train here: bf16 needs AVX512_BF16 and
/// the CPU (r2unet's own kernels; elsewhere it would silently be f32).
fn check_precision(config: &TrainConfig, devices: &[Device]) -> Result<()> {
    crate::kernels::check_precision(config.precision)?;
    if !config.precision.is_f32() && devices.iter().any(|d| d.clone().inner() != Device::flex()) {
        return Err(Error::invalid(
            "precision bf16",
            "runs on r2unet's CPU kernels: train on the CPU, or in f32 on other devices",
        ));
    }
    Ok(())
}

impl Trainer {
    /// A new run of `config` writing into `dir`, on `device` (autodiff is added).
    ///
    /// # Errors
    ///
    /// Invalid settings, or a folder that cannot be written (checked before training).
    pub fn new(config: TrainConfig, dir: RunDir, device: &Device) -> Result<Self> {
        config.validate()?;
        check_precision(&config, std::slice::from_ref(device))?;
        dir.create()?;
        if dir.state().exists() {
            return Err(Error::invalid(
                "run folder",
                format!(
                    "{} already holds a run: resume it, or train into another folder",
                    dir.0.display()
                ),
            ));
        }
        dir.write_config(&config)?;
        Ok(Self {
            config,
            dir,
            device: device.clone().autodiff(),
            devices: vec![device.clone().autodiff()],
            resume: false,
        })
    }

    /// Continues the run in `dir` from its last checkpoint.
    ///
    /// # Errors
    ///
    /// Missing or unreadable run files, named.
    pub fn resume(dir: RunDir, device: &Device) -> Result<Self> {
        let config = dir.read_config()?;
        config.validate()?;
        check_precision(&config, std::slice::from_ref(device))?;
        dir.create()?;
        // A run stopped before its first checkpoint starts over from its config.
        let resume = dir.state().exists();
        let keep = if resume {
            dir.read_state()?.checkpoint
        } else {
            None
        };
        // Files of a checkpoint that never committed, and cut-off temporaries.
        dir.remove_stale(keep.as_deref())?;
        Ok(Self {
            config,
            dir,
            device: device.clone().autodiff(),
            devices: vec![device.clone().autodiff()],
            resume,
        })
    }

    /// The run's config.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains data-parallel on `devices` (the first holds the model and the
    /// optimizer): every batch is split into one shard per device, see
    /// [`super::parallel`]. A device may be named more than once. One device
    /// is the plain loop; a resumed run continues exactly only on the devices
    /// it started with.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an empty list or more devices than the batch size.
    pub fn on_devices(mut self, devices: &[Device]) -> Result<Self> {
        if devices.is_empty() || devices.len() > self.config.batch_size {
            return Err(Error::invalid(
                "devices",
                format!(
                    "{} devices for batches of {}; expected 1 to {} devices",
                    devices.len(),
                    self.config.batch_size,
                    self.config.batch_size
                ),
            ));
        }
        check_precision(&self.config, devices)?;
        self.devices = devices.iter().map(|d| d.clone().autodiff()).collect();
        self.device = self.devices[0].clone();
        Ok(self)
    }

    /// The batch loss and its gradients for the main model, on one device or
    /// split across [`Self::on_devices`].
    fn gradients(
        &self,
        model: &UNet,
        items: Vec<crate::data::patches::PatchItem>,
        batcher: &PatchBatcher,
    ) -> Result<(f64, GradientsParams)> {
        let c = &self.config;
        if self.devices.len() == 1 {
            let batch = batcher.batch(items, &self.device);
            let loss = loss_of(c, model.forward(batch.images), batch.labels);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            return Ok((value, GradientsParams::from_grads(loss.backward(), model)));
        }
        let n = items.len();
        let mut rest = items.into_iter();
        let shards = shard_ranges(n, self.devices.len())
            .into_iter()
            .map(|r| {
                let shard: Vec<_> = rest.by_ref().take(r.len()).collect();
                (shard, r.len() as f64 / n as f64)
            })
            .collect();
        sharded_gradients(model, &self.devices, shards, |replica, shard, device| {
            let batch = batcher.batch(shard, device);
            loss_of(c, replica.forward(batch.images), batch.labels)
        })
    }

    /// Trains until done or until `stop` is raised, reporting through `on_event`.
    ///
    /// # Errors
    ///
    /// Data errors; a non-finite loss (the last good checkpoint is kept); write errors.
    pub fn run(self, stop: &AtomicBool, on_event: &mut dyn FnMut(Event)) -> Result<Outcome> {
        let c = &self.config;
        // The run's own precision, whatever the process had set (restored after).
        let _precision = crate::kernels::PrecisionScope::set(c.precision)?;
        let raw = training_samples(c)?;
        let (preprocess, samples) = prepare(c, &raw)?;
        drop(raw);
        let channels = samples[0].image.channels;
        let whole_image = matches!(preprocess, Preprocess::Resize { .. });
        let (train_refs, val_refs) = sample_patches(&samples, &patch_config(c, whole_image))?;
        let samples = Arc::new(samples);
        let augment = if c.augment {
            Augment::default()
        } else {
            Augment::NONE
        };
        let train_set =
            PatchDataset::new(samples.clone(), train_refs, c.patch_size, augment, c.seed);
        let val_set = PatchDataset::new(samples, val_refs, c.patch_size, Augment::NONE, c.seed);
        let batcher = PatchBatcher {
            size: c.patch_size,
            channels,
        };
        on_event(Event::Ready {
            train: train_set.len(),
            val: val_set.len(),
            channels,
        });

        let model_config = c.model.clone().with_in_channels(channels);
        let fresh_optim = AdamConfig::new().with_epsilon(1e-8).init();
        let (mut model, mut optim, mut state) = if self.resume {
            let mut state = self.dir.read_state()?;
            state.preprocess = with_ct_window(state.preprocess, c);
            let (model, optim) = self.dir.restore(&state, &self.device, fresh_optim)?;
            (model, optim, state)
        } else {
            let model = match &c.init {
                Some(weights) => load_weights(&model_config, weights, &self.device)?,
                None => {
                    let mut model = model_config.init(&self.device);
                    model.reinitialize(c.seed);
                    model
                }
            };
            let state = RunState {
                epoch: 0,
                step_in_epoch: 0,
                steps: 0,
                epoch_loss_sum: 0.0,
                best_auc: None,
                elapsed_s: 0.0,
                preprocess,
                history: Vec::new(),
                checkpoint: None,
            };
            (model, fresh_optim, state)
        };
        let steps_per_epoch = train_set.len().div_ceil(c.batch_size);
        let total_steps = steps_per_epoch * c.epochs;
        let started = Instant::now();
        let elapsed_before = state.elapsed_s;
        let mut last_save = Instant::now();

        while state.epoch < c.epochs {
            let epoch = state.epoch + 1;
            let epoch_set = train_set.for_epoch(epoch as u64);
            let mut order: Vec<usize> = (0..epoch_set.len()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(
                c.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9),
            ));
            let epoch_start = Instant::now();
            let first_step = state.step_in_epoch;
            for (step, chunk) in order.chunks(c.batch_size).enumerate().skip(first_step) {
                if stop.load(Ordering::Relaxed) {
                    state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
                    self.dir.checkpoint(&model, &optim, &mut state)?;
                    on_event(Event::Interrupted);
                    return Ok(Outcome::Interrupted(state));
                }
                let items = chunk
                    .iter()
                    .map(|&i| epoch_set.get(i))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::invalid("patch", e.to_string()))?;
                let lr = c.schedule.rate(c.lr, state.steps, total_steps);
                let (value, grads) = self.gradients(&model, items, &batcher)?;
                if !value.is_finite() {
                    return Err(Error::invalid(
                        "training",
                        format!(
                            "loss became {value} at epoch {epoch}, step {}; the last good checkpoint in {} is kept (try a lower learning rate)",
                            step + 1,
                            self.dir.0.display()
                        ),
                    ));
                }
                model = optim.step(lr, model, grads);
                state.steps += 1;
                state.step_in_epoch = step + 1;
                state.epoch_loss_sum += value;
                let done = (step + 1 - first_step) * c.batch_size;
                on_event(Event::Step {
                    epoch,
                    step: step + 1,
                    steps: steps_per_epoch,
                    loss: value,
                    patches_per_s: done as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                });
                if c.checkpoint_minutes > 0.0
                    && last_save.elapsed().as_secs_f64() > 60.0 * c.checkpoint_minutes
                {
                    state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
                    self.dir.checkpoint(&model, &optim, &mut state)?;
                    last_save = Instant::now();
                }
            }
            let trained = (steps_per_epoch - first_step) * c.batch_size;
            let patches_per_s =
                trained.min(epoch_set.len()) as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            let (val_loss, val_auc, val_f1) = validate(c, &model, &val_set, &batcher)?;
            state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            let record = EpochRecord {
                epoch,
                train_loss: state.epoch_loss_sum / steps_per_epoch as f64,
                val_loss,
                val_auc,
                val_f1,
                lr: c.schedule.rate(c.lr, state.steps, total_steps),
                patches_per_s,
                elapsed_s: state.elapsed_s,
                steps: state.steps,
            };
            state.epoch = epoch;
            state.step_in_epoch = 0;
            state.epoch_loss_sum = 0.0;
            state.history.push(record.clone());
            // Model selection by validation AUC; without validation, the latest is best.
            let better = match (val_auc, state.best_auc) {
                (Some(auc), Some(best)) => auc > best,
                (Some(_), None) => true,
                (None, _) => true,
            };
            if better {
                state.best_auc = val_auc.or(state.best_auc);
                model.save_with(&self.dir.best(), &[state.preprocess.metadata()])?;
            }
            if c.keep_epochs {
                // Before the checkpoint: a run stopped between the two redoes
                // the epoch, bit-identically, and writes the same file again.
                let path = self.dir.epoch_model(epoch);
                model.write_safetensors(&path, &[state.preprocess.metadata()])?;
            }
            self.dir.checkpoint(&model, &optim, &mut state)?;
            last_save = Instant::now();
            on_event(Event::Epoch(record));
        }
        Ok(Outcome::Finished(state))
    }
}

fn loss_of(c: &TrainConfig, logits: Tensor<4>, labels: Tensor<4>) -> Tensor<1> {
    match c.loss {
        LossKind::Bce => bce_with_logits(logits, labels, c.pos_weight),
        LossKind::Dice => dice_with_logits(logits, labels),
        LossKind::BceDice => {
            bce_with_logits(logits.clone(), labels.clone(), c.pos_weight)
                + dice_with_logits(logits, labels)
        }
    }
}

/// Validation loss, and AUC and F1 (threshold 0.5) inside the FOV pooled over
/// all validation patches, with the model in eval mode (running statistics).
fn validate(
    c: &TrainConfig,
    model: &UNet,
    set: &PatchDataset,
    batcher: &PatchBatcher,
) -> Result<(Option<f64>, Option<f64>, Option<f64>)> {
    if set.len() == 0 {
        return Ok((None, None, None));
    }
    let eval_model = model.valid();
    let device = eval_model.devices().into_iter().next().unwrap_or_default();
    let mut roc = RocAccumulator::new();
    let mut confusion = Confusion::default();
    let mut loss_sum = 0.0;
    let mut batches = 0;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(c.batch_size) {
        let items = chunk
            .iter()
            .map(|&i| set.get(i))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid("patch", e.to_string()))?;
        let PatchBatch {
            images,
            labels,
            fov,
        } = batcher.batch(items, &device);
        let logits = eval_model.forward(images);
        loss_sum += f64::from(loss_of(c, logits.clone(), labels.clone()).into_scalar::<f32>());
        batches += 1;
        let probs: Vec<f32> = sigmoid(logits)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap_or_default();
        let to_u8 = |t: Tensor<4>| -> Vec<u8> {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_default()
                .into_iter()
                .map(|v| u8::from(v > 0.5))
                .collect()
        };
        let (labels, fov) = (to_u8(labels), to_u8(fov));
        roc.push(&probs, &labels, Some(&fov))?;
        confusion += Confusion::from_probs(&probs, &labels, Some(&fov), 0.5);
    }
    let auc = roc.finish().auc();
    let f1 = confusion.f1(ZeroDivision::One);
    Ok((Some(loss_sum / batches as f64), auc, Some(f1)))
}
