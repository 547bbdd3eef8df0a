//! The 3x3 convolution (stride 1, padding 1) of every block, on the CPU
//! through r2unet's own kernels ([`passes`]), elsewhere through Burn's.
//!
//! The kernels join Burn as a backend extension (`#[backend_extension]`) for
//! its `flex` CPU backend, with a hand-written backward pass for autodiff, so
//! training differentiates through them like through Burn's own `conv2d`.
//! GPU backends keep Burn's `conv2d`. `R2UNET_BURN_CONV=1` sends the CPU to
//! Burn's too, for comparisons (BENCHMARKS.md).

pub mod passes;
mod tile;

use std::sync::OnceLock;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use passes::Maps;

/// `conv2d(x, weight, bias)` with a `[cout, cin, 3, 3]` weight, stride 1 and
/// padding 1.
///
/// # Shapes
///
/// - `x`: `[b, cin, h, w]`, `weight`: `[cout, cin, 3, 3]`, `bias`: `[cout]` → `[b, cout, h, w]`
pub fn conv3x3(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    assert_eq!([kh, kw], [3, 3], "conv3x3 takes a 3x3 weight");
    if own_kernels_apply(&x) {
        let out = <Dispatch as Conv3x3Backend>::conv3x3(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        );
        Tensor::from_dispatch(out)
    } else {
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        conv2d(x, weight, Some(bias), options)
    }
}

/// Whether `x` lives on the CPU backend in `f32` and the kernels are not switched off.
fn own_kernels_apply(x: &Tensor<4>) -> bool {
    static BURN_CONV: OnceLock<bool> = OnceLock::new();
    let off =
        *BURN_CONV.get_or_init(|| std::env::var_os("R2UNET_BURN_CONV").is_some_and(|v| v == "1"));
    !off && x.dtype() == DType::F32 && x.device().inner() == Device::flex()
}

/// The backend operation behind [`conv3x3`].
#[backend_extension(Flex, Autodiff)]
pub trait Conv3x3Backend: Backend {
    /// A 3x3, stride-1, padding-1 convolution with bias.
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl Conv3x3Backend for Flex {
    fn conv3x3(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let maps = maps_of(&x);
        let cout = weight.layout().shape()[0];
        let out = passes::forward(
            &values(&x),
            maps,
            &values(&weight),
            cout,
            Some(&values(&bias)),
        );
        tensor(out, [maps.batch, cout, maps.height, maps.width])
    }
}

impl<C: CheckpointStrategy> Conv3x3Backend for Autodiff<Flex, C> {
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv3x3Grad;

        impl Backward<Flex, 3> for Conv3x3Grad {
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
                let grad = values(&grad);
                if let Some(node) = node_x {
                    let out_maps = Maps {
                        channels: cout,
                        ..maps
                    };
                    let dx = passes::input_grad(&grad, out_maps, &values(&weight), maps.channels);
                    grads.register::<Flex>(node.id, tensor(dx, x.layout().shape().clone()));
                }
                if node_weight.is_some() || node_bias.is_some() {
                    let (dw, db) = passes::weight_grad(&values(&x), maps, &grad, cout);
                    if let Some(node) = node_weight {
                        grads
                            .register::<Flex>(node.id, tensor(dw, weight.layout().shape().clone()));
                    }
                    if let Some(node) = node_bias {
                        grads.register::<Flex>(node.id, tensor(db, [cout]));
                    }
                }
            }
        }

        match Conv3x3Grad
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let out = Flex::conv3x3(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv3x3(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }
}

fn maps_of(x: &FlexTensor) -> Maps {
    let shape = x.layout().shape();
    assert_eq!(shape.num_dims(), 4, "a conv3x3 input is [b, c, h, w]");
    Maps {
        batch: shape[0],
        channels: shape[1],
        height: shape[2],
        width: shape[3],
    }
}

/// The values of `t` in row-major order, borrowed when already contiguous.
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32").to_vec()),
    }
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}
