//! Data-parallel gradients: one batch split across several devices.
//!
//! Each shard runs on a replica of the model forked onto its device (Burn's
//! `Module::fork`, as its own `MultiDevicesTrainStep` does), in its own
//! thread; the gradients come back to the first device and are summed there
//! with Burn's `GradientsAccumulator`, so the caller makes one optimizer step
//! on the main model. Each shard's loss is weighted by its share of the batch,
//! so for a per-pixel mean loss (BCE) the summed gradient is the whole batch's.
//! What differs from one device: batch norm sees per-shard statistics (as
//! PyTorch's `DataParallel` without `SyncBatchNorm`), and the Dice loss, pooled
//! over its batch, becomes the weighted mean of the shards' Dice. The running
//! statistics of every replica are averaged by Burn's `RunningState` (one
//! update per thread, merged on the next read).
//!
//! The same device may be named several times (`--devices cpu,cpu`): the
//! replicas then share its threads, which measures the gain of running two
//! smaller batches at once on one CPU.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::UNet;
use crate::threads::{each_in_own_thread, map_in_threads, panic_message};

/// Splits `n` items into `parts` contiguous ranges whose lengths differ by at
/// most one (the first ones longer); empty ranges are left out.
pub fn shard_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|k| {
            let len = base + usize::from(k < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Forward and backward of `shards` (one per device, in order, each with its
/// share of the batch) and the summed gradients on `devices[0]`.
///
/// `loss` builds a shard's loss on a replica: it receives the replica, the
/// shard and the replica's device. It returns the weighted batch loss (the sum
/// of the shards' weighted losses) and the gradients for the main model.
///
/// # Errors
///
/// [`Error::Invalid`] when there are more shards than devices or none, or when
/// a worker thread panicked (its message is kept).
pub fn sharded_gradients<S, F>(
    model: &UNet,
    devices: &[Device],
    shards: Vec<(S, f64)>,
    loss: F,
) -> Result<(f64, GradientsParams)>
where
    S: Send,
    F: Fn(&UNet, S, &Device) -> Tensor<1> + Sync,
{
    if shards.is_empty() || shards.len() > devices.len() {
        return Err(Error::invalid(
            "data-parallel step",
            format!("{} shards for {} devices", shards.len(), devices.len()),
        ));
    }
    let main = &devices[0];
    // Replicas are forked here, in order; each runs its shard in its own thread.
    let work: Vec<_> = shards
        .into_iter()
        .zip(devices)
        .map(|((shard, weight), device)| (model.clone().fork(device), shard, weight, device))
        .collect();
    let results = each_in_own_thread(work, |(replica, shard, weight, device)| {
        let l = loss(&replica, shard, device).mul_scalar(weight);
        let value = f64::from(l.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(l.backward(), &replica);
        (value, grads.to_device(main, &replica))
    });
    let mut total = 0.0;
    let mut accumulator = GradientsAccumulator::new();
    for (k, result) in results.into_iter().enumerate() {
        let (value, grads) = result.map_err(|panic| {
            Error::invalid(
                "data-parallel step",
                format!(
                    "the worker on device {k} ({:?}) failed: {}",
                    devices[k],
                    panic_message(panic.as_ref())
                ),
            )
        })?;
        total += value;
        accumulator.accumulate(model, grads);
    }
    Ok((total, accumulator.grads()))
}

/// An inference forward of `x` split along the batch across `devices`, each
/// shard on a copy of `model` moved to its device, in its own thread; the
/// logits come back concatenated on `devices[0]`, in order.
///
/// # Panics
///
/// When a worker panics (a backend failure), as a one-device forward would.
pub fn sharded_forward(model: &UNet, devices: &[Device], x: Tensor<4>) -> Tensor<4> {
    let [b, ..] = x.dims();
    let ranges = shard_ranges(b, devices.len());
    if ranges.len() <= 1 {
        return model.forward(x);
    }
    let main = &devices[0];
    let work: Vec<_> = ranges
        .into_iter()
        .zip(devices)
        .map(|(r, device)| (model.clone().to_device(device), x.clone().slice(r), device))
        .collect();
    let outputs = map_in_threads(work, |(replica, shard, device)| {
        replica.forward(shard.to_device(device)).to_device(main)
    });
    Tensor::cat(outputs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, Preset};
    use crate::train::loss::bce_with_logits;
    use burn::module::{ModuleVisitor, Param, ParamId};
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn shard_ranges_cover_everything_once_and_balance() {
        assert_eq!(shard_ranges(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shard_ranges(2, 4), vec![0..1, 1..2]);
        assert_eq!(shard_ranges(5, 1), vec![0..5]);
        assert!(shard_ranges(0, 2).is_empty());
    }

    /// Every parameter's gradient in `grads` as flat values, in module order.
    fn flat_grads(model: &UNet, grads: &GradientsParams) -> Vec<(ParamId, Vec<f32>)> {
        struct Collect<'a>(&'a GradientsParams, Vec<(ParamId, Vec<f32>)>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(param.id) {
                    self.1
                        .push((param.id, g.into_data().try_into_vec::<f32>().unwrap()));
                }
            }
        }
        let mut collect = Collect(grads, Vec::new());
        model.visit(&mut collect);
        collect.1
    }

    /// Without batch norm in the way (a batch of identical halves has the same
    /// statistics as each half), two shards give the one-device gradient.
    #[test]
    fn two_shards_on_one_cpu_give_the_whole_batch_gradient() {
        let device = Device::flex().autodiff();
        let config = Preset::Retina
            .config(Architecture::R2unet)
            .with_widths(vec![4, 8]);
        let mut model = config.init(&device);
        model.reinitialize(3);
        let half = Tensor::<4>::random([2, 1, 8, 8], Distribution::Default, &device);
        let half_y = Tensor::<4>::random([2, 1, 8, 8], Distribution::Default, &device)
            .lower_elem(0.4)
            .float();
        let x = Tensor::cat(vec![half.clone(), half.clone()], 0);
        let y = Tensor::cat(vec![half_y.clone(), half_y.clone()], 0);

        let one = bce_with_logits(model.forward(x), y, None);
        let one_value = f64::from(one.clone().into_scalar::<f32>());
        let one_grads = GradientsParams::from_grads(one.backward(), &model);

        let data = |t: &Tensor<4>| t.clone().into_data();
        let shards = vec![
            ((data(&half), data(&half_y)), 0.5),
            ((data(&half), data(&half_y)), 0.5),
        ];
        let devices = vec![device.clone(), device.clone()];
        let (value, grads) = sharded_gradients(
            &model,
            &devices,
            shards,
            |replica, (x, y): (TensorData, TensorData), d| {
                bce_with_logits(
                    replica.forward(Tensor::from_data(x, d)),
                    Tensor::from_data(y, d),
                    None,
                )
            },
        )
        .unwrap();
        assert!((value - one_value).abs() < 1e-6, "{value} vs {one_value}");
        let (a, b) = (flat_grads(&model, &one_grads), flat_grads(&model, &grads));
        assert_eq!(a.len(), b.len());
        assert!(!a.is_empty());
        // Relative to the largest gradient: a conv bias before batch norm has a
        // zero gradient in exact arithmetic and only rounding noise here.
        let scale = a
            .iter()
            .flat_map(|(_, g)| g.iter().map(|v| v.abs()))
            .fold(0.0, f32::max);
        assert!(scale > 0.0);
        for ((id, ga), (_, gb)) in a.iter().zip(&b) {
            for (u, v) in ga.iter().zip(gb) {
                assert!((u - v).abs() / scale < 1e-4, "param {id}: {u} vs {v}");
            }
        }
    }

    #[test]
    fn a_sharded_forward_equals_the_whole_batch_forward() {
        let device = Device::flex();
        let model = Preset::Retina
            .config(Architecture::R2unet)
            .with_widths(vec![4, 8])
            .init(&device);
        let x = Tensor::<4>::random([3, 1, 8, 8], Distribution::Default, &device);
        let one: Vec<f32> = model.forward(x.clone()).into_data().try_into_vec().unwrap();
        let two: Vec<f32> = sharded_forward(&model, &[device.clone(), device.clone()], x)
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(one.len(), two.len());
        let diff = one
            .iter()
            .zip(&two)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn more_shards_than_devices_is_refused() {
        let device = Device::flex().autodiff();
        let model = Preset::Retina
            .config(Architecture::Unet)
            .with_widths(vec![4, 8])
            .init(&device);
        let shards = vec![((), 0.5), ((), 0.5)];
        let err = sharded_gradients(&model, std::slice::from_ref(&device), shards, |_, (), d| {
            Tensor::<1>::zeros([1], d)
        })
        .unwrap_err();
        assert!(err.to_string().contains("2 shards for 1 devices"), "{err}");
    }
}
