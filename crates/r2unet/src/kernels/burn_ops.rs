//! The kernels as Burn operations: backend extensions implemented for
//! `flex` and for autodiff over `flex` (with the backward passes), and the
//! tensor-level functions the model calls, which route other backends to
//! Burn's own operations.

use std::borrow::Cow;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm_train, conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Shape, Tensor, TensorData};

use super::conv::Activation;
use super::{Maps, add_to, add_values, conv, norm_relu, own_kernels_apply, resample};

/// `conv2d(x, weight, bias)` with a `[cout, cin, 3, 3]` weight, stride 1 and
/// padding 1.
///
/// # Shapes
///
/// - `x`: `[b, cin, h, w]`, `weight`: `[cout, cin, 3, 3]`, `bias`: `[cout]` → `[b, cout, h, w]`
pub fn conv3x3(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    conv_same(x, weight, bias, 3)
}

/// `conv2d(x, weight, bias)` with a `[cout, cin, 1, 1]` weight.
///
/// # Shapes
///
/// - `x`: `[b, cin, h, w]`, `weight`: `[cout, cin, 1, 1]`, `bias`: `[cout]` → `[b, cout, h, w]`
pub fn conv1x1(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    conv_same(x, weight, bias, 1)
}

/// `relu(conv3x3(x, weight, bias))`, the ReLU applied as the convolution
/// writes its output (on the CPU without autodiff; elsewhere composed).
///
/// # Shapes
///
/// - as [`conv3x3`]
pub fn conv3x3_relu(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    if own_kernels_apply(&x) && !x.device().is_autodiff() {
        let [_, _, kh, kw] = weight.dims();
        assert_eq!([kh, kw], [3, 3], "a 3x3 weight");
        let out = <Dispatch as ConvBackend>::conv_same(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            Activation::Relu,
        );
        Tensor::from_dispatch(out)
    } else {
        relu(conv3x3(x, weight, bias))
    }
}

/// A recurrent convolutional layer in inference: `x1 = relu(conv3x3(x))`,
/// then `x1 = relu(conv3x3(x + x1))`, step `k` with the weights
/// `weights[k * c..(k + 1) * c]` and biases `biases[k * c..(k + 1) * c]`
/// (each step's batch norm folded in). On the CPU without autodiff, one
/// operation ([`conv::recurrent_relu`]); elsewhere composed of
/// [`conv3x3_relu`] and [`add`].
///
/// # Shapes
///
/// - `x`: `[b, c, h, w]`, `weights`: `[steps * c, c, 3, 3]`, `biases`: `[steps * c]` → `[b, c, h, w]`
pub fn recurrent_relu(x: Tensor<4>, weights: Tensor<4>, biases: Tensor<1>) -> Tensor<4> {
    let c = x.dims()[1];
    let [rows, cin, kh, kw] = weights.dims();
    assert_eq!(
        [cin, kh, kw],
        [c, 3, 3],
        "3x3 weights that keep {c} channels"
    );
    assert!(
        rows > 0 && rows % c == 0,
        "whole steps of {c} filters, not {rows}"
    );
    if own_kernels_apply(&x) && !x.device().is_autodiff() {
        let out = <Dispatch as InferBackend>::recurrent_relu(
            x.into_dispatch(),
            weights.into_dispatch(),
            biases.into_dispatch(),
        );
        return Tensor::from_dispatch(out);
    }
    let step = |k: usize| {
        (
            weights.clone().narrow(0, k * c, c),
            biases.clone().narrow(0, k * c, c),
        )
    };
    let (w, b) = step(0);
    let mut x1 = conv3x3_relu(x.clone(), w, b);
    for k in 1..rows / c {
        let (w, b) = step(k);
        x1 = conv3x3_relu(add(x.clone(), x1), w, b);
    }
    x1
}

/// `[a, b]` along the channels (the decoder's skip connection and
/// upsampled maps). On the CPU without autodiff, one copy per image on
/// rayon's pool ([`super::join_channels`]): Burn's `cat` copies on one
/// thread while the other core waits (1.4% of the R2U-Net inference
/// batch's `perf` samples, about 2.6% of its time); elsewhere `Tensor::cat`.
///
/// # Shapes
///
/// - `a`: `[n, ca, h, w]`, `b`: `[n, cb, h, w]` → `[n, ca + cb, h, w]`
pub fn cat_channels(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let ([n, _, h, w], [nb, _, hb, wb]) = (a.dims(), b.dims());
    if own_kernels_apply(&a)
        && own_kernels_apply(&b)
        && !a.device().is_autodiff()
        && [n, h, w] == [nb, hb, wb]
    {
        return Tensor::from_dispatch(<Dispatch as InferBackend>::cat_channels(
            a.into_dispatch(),
            b.into_dispatch(),
        ));
    }
    Tensor::cat(vec![a, b], 1)
}

/// Inference-only operations (no backward pass: [`recurrent_relu`] and
/// [`cat_channels`] call them without autodiff only).
#[backend_extension(Flex)]
pub trait InferBackend: Backend {
    /// [`recurrent_relu`]'s layer.
    fn recurrent_relu(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        biases: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// [`cat_channels`]'s concatenation.
    fn cat_channels(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl InferBackend for Flex {
    fn recurrent_relu(x: FlexTensor, weights: FlexTensor, biases: FlexTensor) -> FlexTensor {
        let maps = maps_of(&x);
        let c = maps.channels;
        let (weights, biases) = (values(&weights), values(&biases));
        let layers: Vec<(&[f32], &[f32])> =
            weights.chunks(c * c * 9).zip(biases.chunks(c)).collect();
        let out = conv::recurrent_relu(&values(&x), maps, &layers);
        tensor(out, x.layout().shape().clone())
    }

    fn cat_channels(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        let (ma, mb) = (maps_of(&a), maps_of(&b));
        let out = super::join_channels(&values(&a), &values(&b), ma.batch);
        tensor(
            out,
            [ma.batch, ma.channels + mb.channels, ma.height, ma.width],
        )
    }
}

/// A `kernel x kernel` convolution, stride 1, padding `kernel / 2`.
fn conv_same(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, kernel: usize) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    assert_eq!([kh, kw], [kernel, kernel], "a {kernel}x{kernel} weight");
    if own_kernels_apply(&x) {
        let out = <Dispatch as ConvBackend>::conv_same(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            Activation::Identity,
        );
        Tensor::from_dispatch(out)
    } else {
        burn_conv_same(x, weight, bias, kernel, BURN_CONV_PIXELS)
    }
}

/// Output pixels (batch x height x width) per convolution where Burn's own
/// operations run (GPUs): past it, the batch is convolved in chunks, and an
/// image larger than this in bands of rows. cubecl's matrix products launch
/// a workgroup per 8 output pixels in some of the kernels its autotuner
/// picks, and a launch of more than 65,535 workgroups in a dimension fails
/// ("Cube count too big") in cubecl's device thread, which panics and leaves
/// the caller waiting for ever: 1,024 patches of 48x48 failed on an NVIDIA
/// H100 (training) and on Mesa's software Vulkan (inference), and chunks of
/// 256 still failed on the latter once its autotuner had picked that kernel
/// for their shape's class.
const BURN_CONV_PIXELS: usize = 65_535 * 8;

/// Burn's `conv2d` (stride 1, padding `kernel / 2`) with at most
/// `max_pixels` output pixels per call: the batch in equal chunks, and an
/// image larger than that in bands of rows, each read with the `kernel / 2`
/// rows around it; the pieces concatenated. Same values as one call, up to
/// the rounding of the weight gradient's sums.
fn burn_conv_same(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    kernel: usize,
    max_pixels: usize,
) -> Tensor<4> {
    let pad = kernel / 2;
    let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
    let [batch, channels, h, w] = x.dims();
    if batch * h * w <= max_pixels {
        return conv2d(x, weight, Some(bias), options);
    }
    if batch > 1 {
        let chunks = batch.div_ceil((max_pixels / (h * w)).max(1));
        let parts = x
            .split(batch.div_ceil(chunks), 0)
            .into_iter()
            .map(|part| burn_conv_same(part, weight.clone(), bias.clone(), kernel, max_pixels))
            .collect();
        return Tensor::cat(parts, 0);
    }
    // A band's call computes its rows' outputs and those of the rows around
    // it: at most `max_pixels`, unless one row with its neighbours is more.
    let rows = (max_pixels / w).saturating_sub(2 * pad).max(1);
    let bands = (0..h)
        .step_by(rows)
        .map(|r0| {
            let r1 = (r0 + rows).min(h);
            let (a, b) = (r0.saturating_sub(pad), (r1 + pad).min(h));
            let band = x.clone().slice([0..1, 0..channels, a..b, 0..w]);
            let out = conv2d(band, weight.clone(), Some(bias.clone()), options.clone());
            let cout = out.dims()[1];
            out.slice([0..1, 0..cout, r0 - a..r1 - a, 0..w])
        })
        .collect();
    Tensor::cat(bands, 2)
}

/// The backend operation behind [`conv3x3`] and [`conv1x1`].
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// A stride-1 convolution with bias whose padding keeps the size: a
    /// 3x3 weight with padding 1, or a 1x1 weight; then `act` (a ReLU: 3x3
    /// only, and not differentiated).
    fn conv_same(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        act: Activation,
    ) -> FloatTensor<Self>;
}

/// The kernel size of a `[cout, cin, k, k]` weight: 1 or 3.
fn kernel_of(weight: &FlexTensor) -> usize {
    let k = weight.layout().shape()[2];
    assert!(
        k == 1 || k == 3,
        "1x1 and 3x3 convolutions only, not {k}x{k}"
    );
    k
}

impl ConvBackend for Flex {
    fn conv_same(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        act: Activation,
    ) -> FlexTensor {
        let maps = maps_of(&x);
        let (cout, kernel) = (weight.layout().shape()[0], kernel_of(&weight));
        let (x, weight, bias) = (values(&x), values(&weight), values(&bias));
        let out = match kernel {
            3 => conv::forward(&x, maps, &weight, cout, Some(&bias), act),
            _ => {
                assert_eq!(
                    act,
                    Activation::Identity,
                    "1x1 convolutions without activation"
                );
                conv::pointwise_forward(&x, maps, &weight, cout, Some(&bias))
            }
        };
        tensor(out, [maps.batch, cout, maps.height, maps.width])
    }
}

impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn conv_same(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        act: Activation,
    ) -> FloatTensor<Self> {
        assert_eq!(
            act,
            Activation::Identity,
            "a differentiated convolution alone"
        );
        #[derive(Debug)]
        struct ConvGrad;

        impl Backward<Flex, 3> for ConvGrad {
            type State = (NodeId, NodeId);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let x: FlexTensor = checkpointer.retrieve_node_output(ops.state.0);
                let weight: FlexTensor = checkpointer.retrieve_node_output(ops.state.1);
                let (maps, cout) = (maps_of(&x), weight.layout().shape()[0]);
                type InputGrad = fn(&[f32], Maps, &[f32], usize) -> Vec<f32>;
                type WeightGrad = fn(&[f32], Maps, &[f32], usize) -> (Vec<f32>, Vec<f32>);
                let (input_grad, weight_grad): (InputGrad, WeightGrad) = match kernel_of(&weight) {
                    3 => (conv::input_grad, conv::weight_grad),
                    _ => (conv::pointwise_input_grad, conv::pointwise_weight_grad),
                };
                let grad = values(&grad);
                if let Some(node) = node_x {
                    let out_maps = Maps {
                        channels: cout,
                        ..maps
                    };
                    let dx = input_grad(&grad, out_maps, &values(&weight), maps.channels);
                    register(grads, node.id, dx, x.layout().shape().clone());
                }
                if node_weight.is_some() || node_bias.is_some() {
                    let (dw, db) = weight_grad(&values(&x), maps, &grad, cout);
                    if let Some(node) = node_weight {
                        register(grads, node.id, dw, weight.layout().shape().clone());
                    }
                    if let Some(node) = node_bias {
                        register(grads, node.id, db, [cout]);
                    }
                }
            }
        }

        match ConvGrad
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let out = Flex::conv_same(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    act,
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv_same(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                act,
            )),
        }
    }
}

/// `a + b` for two tensors of one shape: on both cores where the kernels
/// apply ([`add_values`]), with autodiff's gradient (the output's, to
/// each); elsewhere, or with broadcasting, Burn's addition.
pub fn add(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if own_kernels_apply(&a) && own_kernels_apply(&b) && a.dims() == b.dims() {
        Tensor::from_dispatch(<Dispatch as AddBackend>::add_same(
            a.into_dispatch(),
            b.into_dispatch(),
        ))
    } else {
        a + b
    }
}

/// The backend operation behind [`add`].
#[backend_extension(Flex, Autodiff)]
pub trait AddBackend: Backend {
    /// `a + b`, both of one shape.
    fn add_same(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl AddBackend for Flex {
    fn add_same(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        let shape = a.layout().shape().clone();
        assert_eq!(&shape, b.layout().shape(), "added tensors of one shape");
        // Into an operand nobody else holds, as Burn's own addition does (a
        // new buffer for each sum cost 4% of a 576x576 image's inference);
        // `x + y` and `y + x` are the same values.
        let len = shape.num_elements();
        let own =
            |t: &FlexTensor| t.is_unique() && t.layout().contiguous_offsets() == Some((0, len));
        let (mut sum, other) = match (own(&a), own(&b)) {
            (_, true) => (b, a),
            (true, false) => (a, b),
            (false, false) => return tensor(add_values(&values(&a), &values(&b)), shape),
        };
        add_to(&mut sum.storage_mut::<f32>()[..len], &values(&other));
        sum
    }
}

impl<C: CheckpointStrategy> AddBackend for Autodiff<Flex, C> {
    fn add_same(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AddGrad;

        impl Backward<Flex, 2> for AddGrad {
            type State = ();

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<Flex>(&ops.node);
                for node in ops.parents.into_iter().flatten() {
                    grads.register::<Flex>(node.id, grad.clone());
                }
            }
        }

        let out = Flex::add_same(a.primitive().clone(), b.primitive().clone());
        AddGrad
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateless(out)
    }
}

/// Training-mode batch norm (batch statistics) followed by ReLU. Returns the
/// output and the per-channel mean and biased variance, which feed the
/// running statistics and carry no gradient.
///
/// # Shapes
///
/// - `x`: `[b, c, h, w]`, `gamma`, `beta`: `[c]` → `[b, c, h, w]`, `[c]`, `[c]`
pub fn batch_norm_relu_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    if !own_kernels_apply(&x) {
        let result = batch_norm_train(x, gamma, beta, epsilon);
        return (relu(result.output), result.mean, result.variance);
    }
    let c = gamma.dims()[0];
    let stats = <Dispatch as NormReluBackend>::channel_stats(x.clone().into_dispatch());
    let stats = Tensor::<1>::from_dispatch(stats);
    let out = <Dispatch as NormReluBackend>::batch_norm_relu(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(out),
        stats.clone().narrow(0, 0, c),
        stats.narrow(0, c, c),
    )
}

/// The backend operations behind [`batch_norm_relu_train`].
#[backend_extension(Flex, Autodiff)]
pub trait NormReluBackend: Backend {
    /// Per-channel mean and biased variance, `[2 * c]`; no gradient.
    fn channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `relu(gamma * (x - mean) / sqrt(var + eps) + beta)` with `stats` from
    /// `channel_stats(x)`, differentiated as training-mode batch norm.
    fn batch_norm_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

impl NormReluBackend for Flex {
    fn channel_stats(x: FlexTensor) -> FlexTensor {
        let maps = maps_of(&x);
        tensor(
            norm_relu::channel_stats(&values(&x), maps),
            [2 * maps.channels],
        )
    }

    fn batch_norm_relu(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let maps = maps_of(&x);
        let out = norm_relu::forward(
            &values(&x),
            maps,
            &values(&gamma),
            &values(&beta),
            &values(&stats),
            epsilon,
        );
        tensor(out, x.layout().shape().clone())
    }
}

impl<C: CheckpointStrategy> NormReluBackend for Autodiff<Flex, C> {
    fn channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(Flex::channel_stats(x.into_primitive()))
    }

    fn batch_norm_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct NormReluGrad;

        impl Backward<Flex, 3> for NormReluGrad {
            /// The input's node, gamma, beta, the statistics and epsilon.
            type State = (NodeId, FlexTensor, FlexTensor, FlexTensor, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x_state, gamma, beta, stats, epsilon) = ops.state;
                let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
                let c = gamma.layout().shape()[0];
                let (dx, dgamma, dbeta) = norm_relu::backward(
                    &values(&x),
                    &values(&grad),
                    maps_of(&x),
                    &values(&gamma),
                    &values(&beta),
                    &values(&stats),
                    epsilon,
                );
                for (node, values, shape) in [
                    (node_x, dx, x.layout().shape().clone()),
                    (node_gamma, dgamma, Shape::from([c])),
                    (node_beta, dbeta, Shape::from([c])),
                ] {
                    if let Some(node) = node {
                        register(grads, node.id, values, shape);
                    }
                }
            }
        }

        match NormReluGrad
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let (gamma_p, beta_p) = (gamma.primitive().clone(), beta.primitive().clone());
                let stats_p = stats.into_primitive();
                let out = Flex::batch_norm_relu(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    stats_p.clone(),
                    epsilon,
                );
                prep.finish((x_state, gamma_p, beta_p, stats_p, epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::batch_norm_relu(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                stats.into_primitive(),
                epsilon,
            )),
        }
    }
}

/// 2x2 max pooling with stride 2, as Burn's `MaxPool2d` with a 2x2 kernel.
///
/// # Shapes
///
/// - `x`: `[b, c, h, w]` → `[b, c, h / 2, w / 2]`
pub fn max_pool2(x: Tensor<4>) -> Tensor<4> {
    if own_kernels_apply(&x) {
        Tensor::from_dispatch(<Dispatch as ResampleBackend>::max_pool2(x.into_dispatch()))
    } else {
        max_pool2d(x, MaxPoolOptions::new([2, 2]))
    }
}

/// Nearest-neighbour upsampling by 2: each value becomes a 2x2 block.
///
/// # Shapes
///
/// - `x`: `[b, c, h, w]` → `[b, c, 2h, 2w]`
pub fn upsample2(x: Tensor<4>) -> Tensor<4> {
    if own_kernels_apply(&x) {
        Tensor::from_dispatch(<Dispatch as ResampleBackend>::upsample2(x.into_dispatch()))
    } else {
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h, 1, w, 1])
            .expand([b, c, h, 2, w, 2])
            .reshape([b, c, 2 * h, 2 * w])
    }
}

/// The backend operations behind [`max_pool2`] and [`upsample2`].
#[backend_extension(Flex, Autodiff)]
pub trait ResampleBackend: Backend {
    /// 2x2 max pooling, stride 2.
    fn max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Nearest-neighbour upsampling by 2.
    fn upsample2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ResampleBackend for Flex {
    fn max_pool2(x: FlexTensor) -> FlexTensor {
        let maps = maps_of(&x);
        let out = resample::max_pool2(&values(&x), maps);
        tensor(
            out,
            [maps.batch, maps.channels, maps.height / 2, maps.width / 2],
        )
    }

    fn upsample2(x: FlexTensor) -> FlexTensor {
        let maps = maps_of(&x);
        let out = resample::upsample2(&values(&x), maps);
        tensor(
            out,
            [maps.batch, maps.channels, 2 * maps.height, 2 * maps.width],
        )
    }
}

impl<C: CheckpointStrategy> ResampleBackend for Autodiff<Flex, C> {
    fn max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MaxPoolGrad;

        impl Backward<Flex, 1> for MaxPoolGrad {
            type State = NodeId;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                if let Some(node) = node_x {
                    let x: FlexTensor = checkpointer.retrieve_node_output(ops.state);
                    let dx = resample::max_pool2_grad(&values(&x), maps_of(&x), &values(&grad));
                    register(grads, node.id, dx, x.layout().shape().clone());
                }
            }
        }

        match MaxPoolGrad
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, Flex::max_pool2(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::max_pool2(x.into_primitive())),
        }
    }

    fn upsample2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct UpsampleGrad;

        impl Backward<Flex, 1> for UpsampleGrad {
            /// The input's shape.
            type State = Maps;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                if let Some(node) = node_x {
                    let m = ops.state;
                    let dx = resample::upsample2_grad(&values(&grad), m);
                    register(grads, node.id, dx, [m.batch, m.channels, m.height, m.width]);
                }
            }
        }

        let maps = maps_of(x.primitive());
        match UpsampleGrad
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(maps, Flex::upsample2(x.into_primitive())),
            OpsKind::UnTracked(prep) => prep.finish(Flex::upsample2(x.into_primitive())),
        }
    }
}

fn maps_of(x: &FlexTensor) -> Maps {
    let shape = x.layout().shape();
    assert_eq!(shape.num_dims(), 4, "a convolution input is [b, c, h, w]");
    Maps {
        batch: shape[0],
        channels: shape[1],
        height: shape[2],
        width: shape[3],
    }
}

/// The values of `t` in row-major order, borrowed when already contiguous.
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32").to_vec()),
    }
}

/// Adds `values` as the gradient of the node `id`.
fn register(grads: &mut Gradients, id: NodeId, values: Vec<f32>, shape: impl Into<Shape>) {
    grads.register::<Flex>(id, tensor(values, shape));
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The inference concatenation is Burn's `cat` along the channels, one
    /// image and several, operands of different widths.
    #[test]
    fn cat_channels_is_burns_cat() {
        let device = Device::flex();
        for (n, ca, cb) in [(1, 2, 3), (5, 4, 1), (3, 16, 16)] {
            let a = Tensor::<4>::random([n, ca, 5, 7], Distribution::Default, &device);
            let b = Tensor::<4>::random([n, cb, 5, 7], Distribution::Default, &device);
            let want = Tensor::cat(vec![a.clone(), b.clone()], 1);
            let got = cat_channels(a, b);
            assert_eq!(got.dims(), want.dims());
            assert_eq!(got.into_data(), want.into_data(), "{n} x ({ca} + {cb})");
        }
    }

    /// In chunks along the batch (7 images of 5x6, at most 61 pixels per
    /// call: 2+2+2+1) and in bands of rows (at most 37 pixels: one image per
    /// call, in bands of 4 rows and 1 read with their neighbours; at most
    /// 13: bands of one row, which with its neighbours is more), Burn's
    /// convolution gives the output and gradients of one call.
    #[test]
    fn chunked_burn_convolutions_match_one_call() {
        let device = Device::flex().autodiff();
        for (kernel, max_pixels) in [(1, 61), (3, 61), (3, 37), (3, 13), (1, 13)] {
            let x =
                Tensor::<4>::random([7, 3, 5, 6], Distribution::Default, &device).require_grad();
            let w = Tensor::<4>::random([4, 3, kernel, kernel], Distribution::Default, &device)
                .require_grad();
            let b = Tensor::<1>::random([4], Distribution::Default, &device).require_grad();
            let values = |d: TensorData| d.try_into_vec::<f32>().expect("f32 values");
            let run = |max_pixels| {
                let y = burn_conv_same(x.clone(), w.clone(), b.clone(), kernel, max_pixels);
                let grads = (y.clone() * y.clone()).sum().backward();
                let grad = |t: &Tensor<4>| values(t.grad(&grads).expect("a gradient").into_data());
                let db = values(b.grad(&grads).expect("a gradient").into_data());
                [values(y.into_data()), grad(&x), grad(&w), db]
            };
            let (whole, chunked) = (run(usize::MAX), run(max_pixels));
            for (name, (a, b)) in ["output", "dx", "dw", "db"]
                .iter()
                .zip(whole.iter().zip(&chunked))
            {
                assert_eq!(a.len(), b.len(), "{name}");
                // Relative to the largest value: sums over the batch round
                // differently in chunks.
                let scale = a.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let diff = a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0, f32::max);
                assert!(
                    diff < 1e-5 * scale,
                    "{kernel}x{kernel}, {max_pixels} pixels, {name}: {diff} of {scale}"
                );
            }
        }
    }
}
