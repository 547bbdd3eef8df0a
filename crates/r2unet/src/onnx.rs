//! ONNX export of a model of the family, for ONNX Runtime and other
//! deployments: the eval-mode network as an ONNX graph (opset 17) with
//! dynamic batch, height and width, every batch norm folded into the
//! convolution before it (as r2unet's own inference does).
//!
//! The protobuf wire format is written by `prost`, the maintained protobuf
//! crate of the Rust ecosystem; [`proto`] declares the subset of
//! `onnx.proto3`'s messages the graph needs, with the field numbers of that
//! file. (`onnx-protobuf`, which ships the whole schema, only builds against
//! protobuf 3.4.0 exactly and was not kept.) The exporter is tested by
//! running its output in ONNX Runtime (the Python tests). Preprocessing (the fundus CLAHE
//! protocol, resizing) stays outside the graph: the model's metadata records
//! it, and height and width must be multiples of `2^(depth-1)` (8 for the
//! retina preset), as for [`UNet::forward`].

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use prost::Message;

use self::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    TypeTensor, ValueInfoProto,
};
use crate::error::Result;
use crate::model::{AttentionGate, BatchNorm2d, Block, Preprocess, Rcl, UNet};

/// The messages of `onnx.proto3` (ONNX 1.16) that the exporter writes,
/// with their field numbers; fields it never sets are left out, which the
/// protobuf format allows.
pub mod proto {
    /// `TensorProto.DataType.FLOAT`.
    pub const FLOAT: i32 = 1;
    /// `AttributeProto.AttributeType` values.
    pub const ATTR_INT: i32 = 2;
    /// A string attribute.
    pub const ATTR_STRING: i32 = 3;
    /// A list of int64.
    pub const ATTR_INTS: i32 = 7;

    /// `ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    /// `OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// `StringStringEntryProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    /// `NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    /// `AttributeProto` (int, string and ints attributes).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// `TensorProto` (float data as little-endian `raw_data`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }

    /// `ValueInfoProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// `TypeProto` with its `tensor_type` member (the oneof's field 1).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TypeTensor>,
    }

    /// `TypeProto.Tensor`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeTensor {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// `TensorShapeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// `TensorShapeProto.Dimension`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(oneof = "DimensionValue", tags = "1, 2")]
        pub value: Option<DimensionValue>,
    }

    /// The `value` oneof of a dimension.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum DimensionValue {
        /// A fixed size.
        #[prost(int64, tag = "1")]
        DimValue(i64),
        /// A named, dynamic size.
        #[prost(string, tag = "2")]
        DimParam(String),
    }
}

/// The ONNX operator set the graph uses.
pub const OPSET: i64 = 17;
/// The ONNX IR version written (IR 8 goes with opset 17).
pub const IR_VERSION: i64 = 8;

/// What the exported graph returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnnxOutput {
    /// Logits, as [`UNet::forward`] (output `logits`).
    #[default]
    Logits,
    /// Sigmoid probabilities (output `probabilities`).
    Probabilities,
}

/// The graph being built: nodes, weights and a counter for fresh names.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    weights: Vec<TensorProto>,
    next: usize,
}

fn values(tensor: Tensor<1>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: proto::ATTR_INTS,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: proto::ATTR_INT,
        i,
        ..Default::default()
    }
}

fn attr_str(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: proto::ATTR_STRING,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

impl Builder {
    /// A weight named `name` of shape `dims`.
    fn weight(&mut self, name: String, dims: &[usize], data: &[f32]) -> String {
        self.weights.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: proto::FLOAT,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A node of `op` on `inputs`; returns its one output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.next += 1;
        let output = format!("{}_{}", op.to_ascii_lowercase(), self.next);
        self.nodes.push(NodeProto {
            name: format!("{op}_{}", self.next),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute,
        });
        output
    }

    /// A convolution (3x3 with padding 1, or 1x1) with `weight` and `bias`
    /// stored under `name`.
    fn conv(&mut self, x: &str, weight: Tensor<4>, bias: Tensor<1>, name: &str) -> String {
        let dims = weight.dims();
        let w = weight
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 data");
        let w = self.weight(format!("{name}.weight"), &dims, &w);
        let b = self.weight(format!("{name}.bias"), &[dims[0]], &values(bias));
        let pad = (dims[2] / 2) as i64;
        self.node(
            "Conv",
            &[x, &w, &b],
            vec![
                attr_ints("kernel_shape", &[dims[2] as i64, dims[3] as i64]),
                attr_ints("pads", &[pad; 4]),
                attr_ints("strides", &[1, 1]),
            ],
        )
    }

    /// `conv` followed by `norm` in eval mode, folded into one convolution.
    fn conv_bn(&mut self, x: &str, conv: &Conv2d, norm: &BatchNorm2d, name: &str) -> String {
        let (w, b) = norm.fold(conv.weight.val(), conv.bias.as_ref().map(Param::val));
        self.conv(x, w, b, name)
    }

    /// A plain convolution with its own bias.
    fn conv_plain(&mut self, x: &str, conv: &Conv2d, name: &str) -> String {
        let weight = conv.weight.val();
        let bias = match &conv.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([weight.dims()[0]], &weight.device()),
        };
        self.conv(x, weight, bias, name)
    }

    /// [`Rcl::forward`]: `x1 = relu(bn0(f(x)))`, then `x1 = relu(bnk(f(x + x1)))`.
    fn rcl(&mut self, x: &str, rcl: &Rcl, name: &str) -> String {
        let step = |b: &mut Self, input: &str, k: usize| {
            let n = k.min(rcl.norms.len() - 1);
            let c = b.conv_bn(input, &rcl.conv, &rcl.norms[n], &format!("{name}.step{k}"));
            b.node("Relu", &[&c], vec![])
        };
        let mut x1 = step(self, x, 0);
        for k in 1..=rcl.steps {
            let sum = self.node("Add", &[x, &x1], vec![]);
            x1 = step(self, &sum, k);
        }
        x1
    }

    /// [`Block::forward`].
    fn block(&mut self, x: &str, block: &Block, name: &str) -> String {
        let p = match &block.proj {
            Some(proj) => self.conv_plain(x, proj, &format!("{name}.proj")),
            None => x.to_string(),
        };
        let mut y = p.clone();
        for (i, layer) in block.layers.iter().enumerate() {
            y = self.rcl(&y, layer, &format!("{name}.body.{i}"));
        }
        if block.residual {
            self.node("Add", &[&p, &y], vec![])
        } else {
            y
        }
    }

    /// [`AttentionGate::forward`].
    fn gate(&mut self, g: &str, x: &str, gate: &AttentionGate, name: &str) -> String {
        let g1 = self.conv_bn(g, &gate.w_g, &gate.bn_g, &format!("{name}.W_g"));
        let x1 = self.conv_bn(x, &gate.w_x, &gate.bn_x, &format!("{name}.W_x"));
        let sum = self.node("Add", &[&g1, &x1], vec![]);
        let inner = self.node("Relu", &[&sum], vec![]);
        let psi = self.conv_bn(&inner, &gate.psi, &gate.bn_psi, &format!("{name}.psi"));
        let psi = self.node("Sigmoid", &[&psi], vec![]);
        self.node("Mul", &[x, &psi], vec![])
    }
}

/// A float NCHW graph input or output with dynamic batch, height and width.
fn io(name: &str, channels: usize) -> ValueInfoProto {
    use DimensionValue::{DimParam, DimValue};
    let dims = [
        DimParam("batch".into()),
        DimValue(channels as i64),
        DimParam("height".into()),
        DimParam("width".into()),
    ];
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: proto::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| Dimension { value: Some(v) })
                        .collect(),
                }),
            }),
        }),
    }
}

/// The ONNX model (serialised protobuf) of `model` in eval mode, returning
/// `output`; `preprocess` is recorded in its metadata (`r2unet_preprocess`)
/// beside the model config (`r2unet_config`).
///
/// # Errors
///
/// None today; a `Result` so that unsupported models can be refused.
pub fn export(
    model: &UNet,
    preprocess: Option<&Preprocess>,
    output: OnnxOutput,
) -> Result<Vec<u8>> {
    let mut b = Builder::default();
    let mut x = "input".to_string();
    let mut skips = Vec::new();
    for (i, block) in model.enc.iter().enumerate() {
        if i > 0 {
            x = b.node(
                "MaxPool",
                &[&x],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            );
        }
        x = b.block(&x, block, &format!("enc.{i}"));
        skips.push(x.clone());
    }
    skips.pop();
    let scales = b.weight("upsample.scales".into(), &[4], &[1.0, 1.0, 2.0, 2.0]);
    for (i, (up, block)) in model.up.iter().zip(&model.dec).enumerate() {
        // Nearest 2x: output pixel (y, x) reads input (floor(y/2), floor(x/2)).
        let wide = b.node(
            "Resize",
            &[&x, "", &scales],
            vec![
                attr_str("mode", "nearest"),
                attr_str("coordinate_transformation_mode", "asymmetric"),
                attr_str("nearest_mode", "floor"),
            ],
        );
        let d = b.rcl(&wide, up, &format!("up.{i}"));
        let skip = skips.pop().expect("one skip per decoder stage");
        let skip = match model.att.get(i) {
            Some(gate) => b.gate(&d, &skip, gate, &format!("att.{i}")),
            None => skip,
        };
        let joined = b.node("Concat", &[&skip, &d], vec![attr_int("axis", 1)]);
        x = b.block(&joined, block, &format!("dec.{i}"));
    }
    let logits = b.conv_plain(&x, &model.head, "head");
    let (last, name) = match output {
        OnnxOutput::Logits => (logits, "logits"),
        OnnxOutput::Probabilities => (b.node("Sigmoid", &[&logits], vec![]), "probabilities"),
    };
    // Name the graph's output by renaming the last node's.
    let node = b.nodes.last_mut().expect("the head");
    debug_assert_eq!(node.output[0], last);
    node.output[0] = name.to_string();

    let config = &model.config;
    let mut metadata = vec![(
        "r2unet_config".to_string(),
        serde_json::to_string(config).expect("config serialises"),
    )];
    if let Some(p) = preprocess {
        let (key, json) = p.metadata();
        metadata.push((key.to_string(), json));
    }
    metadata.push((
        "r2unet_input".to_string(),
        format!(
            "float32 NCHW, {} channel(s), height and width multiples of {}",
            config.in_channels,
            config.size_multiple()
        ),
    ));
    let graph = GraphProto {
        name: format!("r2unet-{}", config.architecture),
        node: b.nodes,
        initializer: b.weights,
        input: vec![io("input", config.in_channels)],
        output: vec![io(name, config.out_channels)],
    };
    let model_proto = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "r2unet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    };
    Ok(model_proto.encode_to_vec())
}
