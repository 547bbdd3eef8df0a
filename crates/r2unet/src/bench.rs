//! Step timings of a model, the same measurement as the PyTorch reference's
//! `bench` (`../shared/reference/r2unet_torch.py`): random inputs and labels,
//! `warmup` untimed steps, then `steps` timed ones. A training step is
//! forward + BCE-with-logits + backward + Adam; an inference step is an
//! eval-mode forward + sigmoid + mean read back. FLOPs are the convolutions'
//! (2 per multiply-add), tripled for a training step as the reference counts.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{UNetConfig, conv_flops};
use crate::train::loss::bce_with_logits;
use crate::train::parallel::{shard_ranges, sharded_forward, sharded_gradients};

/// Training step or inference step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// Forward, loss, backward, Adam.
    Train,
    /// Eval-mode forward.
    Infer,
}

/// What to time.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// Training or inference.
    pub mode: BenchMode,
    /// Patches per step.
    pub batch: usize,
    /// Patch side.
    pub size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Seed of the inputs.
    pub seed: u64,
}

/// Timings of a benchmark, in the reference's JSON field names.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// `r2unet`.
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    /// The mode.
    pub mode: BenchMode,
    /// Patches per step.
    pub batch: usize,
    /// Patch side.
    pub size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Median milliseconds per step.
    pub median_ms: f64,
    /// Fastest step.
    pub min_ms: f64,
    /// `batch / median`.
    pub patches_per_s: f64,
    /// Convolution FLOPs per step / median.
    pub gflop_per_s: f64,
    /// Peak resident memory of the process so far (Linux), MiB.
    pub peak_rss_mib: Option<u64>,
    /// The instruction set of r2unet's CPU kernels (`avx512`, `avx2`,
    /// `portable`; `R2UNET_ISA` caps it), `avx512+amx` where bf16 runs on
    /// AMX tiles.
    pub isa: &'static str,
}

/// Peak resident set size of this process in MiB, from `/proc/self/status`
/// (`VmHWM`); `None` where that file does not exist. Read by hand: no kept
/// crate reports it without pulling in a system-information library.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Times `config` on `devices` (autodiff is added for training). With several
/// devices a training step is data-parallel ([`crate::train::parallel`]): the
/// batch is split into one shard per device, and so is an inference batch.
///
/// # Errors
///
/// [`Error::Invalid`] for zero steps or batch, no devices or more than the
/// batch, or a size that is not a multiple of the model's `2^(depth-1)`.
pub fn bench(model: &UNetConfig, config: &BenchConfig, devices: &[Device]) -> Result<BenchResult> {
    if config.steps == 0 || config.batch == 0 {
        return Err(Error::invalid("bench", "steps and batch must be positive"));
    }
    if devices.is_empty() || devices.len() > config.batch {
        return Err(Error::invalid(
            "bench",
            format!("{} devices for a batch of {}", devices.len(), config.batch),
        ));
    }
    let m = model.size_multiple();
    if config.size == 0 || !config.size.is_multiple_of(m) {
        return Err(Error::invalid(
            "size",
            format!("{}; expected a positive multiple of {m}", config.size),
        ));
    }
    let (b, s) = (config.batch, config.size);
    let shape = [b, model.in_channels, s, s];
    let devices: Vec<Device> = devices
        .iter()
        .map(|d| match config.mode {
            BenchMode::Train => d.clone().autodiff(),
            BenchMode::Infer => d.clone(),
        })
        .collect();
    let device = devices[0].clone();
    let mut net = model.init(&device);
    net.reinitialize(config.seed);
    // Inputs from a seeded generator so both modes see the same data.
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(config.seed);
    let values: Vec<f32> = (0..shape.iter().product())
        .map(|_| rand::Rng::random::<f32>(&mut rng))
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(values, shape), &device);
    let y = Tensor::<4>::random(
        [b, model.out_channels, s, s],
        Distribution::Uniform(0.0, 1.0),
        &device,
    )
    .lower_elem(0.3)
    .float();
    let flops = conv_flops(model, s, s) as f64 * b as f64;
    let mut times = Vec::with_capacity(config.steps);
    match config.mode {
        BenchMode::Train => {
            let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
            for i in 0..config.warmup + config.steps {
                let t0 = Instant::now();
                let grads = if devices.len() == 1 {
                    let loss = bce_with_logits(net.forward(x.clone()), y.clone(), None);
                    let _ = loss.clone().into_scalar::<f32>();
                    GradientsParams::from_grads(loss.backward(), &net)
                } else {
                    let shards = shard_ranges(b, devices.len())
                        .into_iter()
                        .map(|r| {
                            let w = r.len() as f64 / b as f64;
                            ((x.clone().slice(r.clone()), y.clone().slice(r)), w)
                        })
                        .collect();
                    sharded_gradients(&net, &devices, shards, |replica, (x, y), d| {
                        let (x, y) = (x.to_device(d), y.to_device(d));
                        bce_with_logits(replica.forward(x), y, None)
                    })?
                    .1
                };
                net = optim.step(1e-3, net, grads);
                if i >= config.warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
        BenchMode::Infer => {
            for i in 0..config.warmup + config.steps {
                let t0 = Instant::now();
                let logits = sharded_forward(&net, &devices, x.clone());
                let _ = sigmoid(logits).mean().into_scalar::<f32>();
                if i >= config.warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let work = match config.mode {
        BenchMode::Train => 3.0 * flops,
        BenchMode::Infer => flops,
    };
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    Ok(BenchResult {
        implementation: "r2unet",
        mode: config.mode,
        batch: b,
        size: s,
        steps: config.steps,
        median_ms: round2(median * 1000.0),
        min_ms: round2(times[0] * 1000.0),
        patches_per_s: round2(b as f64 / median),
        gflop_per_s: round2(work / median / 1e9),
        peak_rss_mib: peak_rss_mib(),
        isa: crate::kernels::isa_now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, Preset};

    #[test]
    fn a_tiny_bench_runs_in_both_modes_and_reports_consistent_figures() {
        let model = Preset::Retina
            .config(Architecture::R2unet)
            .with_widths(vec![4, 8]);
        for mode in [BenchMode::Train, BenchMode::Infer] {
            let config = BenchConfig {
                mode,
                batch: 2,
                size: 16,
                steps: 3,
                warmup: 1,
                seed: 0,
            };
            let r = bench(&model, &config, &[Device::flex()]).unwrap();
            // Two replicas on the one CPU device, data-parallel.
            let two = bench(&model, &config, &[Device::flex(), Device::flex()]).unwrap();
            assert!(two.min_ms > 0.0, "{two:?}");
            assert!(r.min_ms <= r.median_ms && r.min_ms > 0.0, "{r:?}");
            let pps = 2.0 / (r.median_ms / 1000.0);
            assert!((r.patches_per_s - pps).abs() / pps < 0.02, "{r:?}");
        }
        // Widths 4,8 need sizes that are multiples of 2.
        let bad = BenchConfig {
            mode: BenchMode::Infer,
            batch: 2,
            size: 13,
            steps: 1,
            warmup: 0,
            seed: 0,
        };
        assert!(bench(&model, &bad, &[Device::flex()]).is_err());
        let small = BenchConfig {
            mode: BenchMode::Train,
            batch: 1,
            size: 16,
            steps: 1,
            warmup: 0,
            seed: 0,
        };
        assert!(bench(&model, &small, &[Device::flex(), Device::flex()]).is_err());
        assert!(peak_rss_mib().is_none_or(|m| m > 0));
    }
}
