//! Weights on disk: safetensors files whose tensor names are the PyTorch
//! reference's `state_dict` names, so that our files and checkpoints trained by
//! the PyTorch R2U-Net are read by the same code. The model config travels as
//! JSON, both in the file's metadata and in a `.json` file beside it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Param, ParamId, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::config::UNetConfig;
use super::layout::TorchLayout;
use super::unet::UNet;
use crate::atomic::{Staged, write_atomic};
use crate::error::{Error, Result};

/// A mutable reference to one named tensor of a model.
pub(crate) enum Slot<'a> {
    /// A trainable vector (bias, batch-norm scale/shift).
    Param1(&'a mut Param<Tensor<1>>),
    /// A trainable convolution kernel.
    Param4(&'a mut Param<Tensor<4>>),
    /// A non-trainable buffer (batch-norm running statistics).
    Buffer1(&'a mut RunningState<Tensor<1>>),
}

/// The callback that model walkers call for every named tensor.
pub(crate) type Visit<'a> = dyn FnMut(String, Slot<'_>) + 'a;

/// The entry, inside the [`METADATA_KEY`] object, holding the model config.
const CONFIG_KEY: &str = "r2unet_config";
/// The one safetensors metadata key r2unet writes: a JSON object of named
/// entries (config, preprocessing, provenance). One key, because the
/// safetensors writer orders several keys by a randomly seeded hash, which
/// would make identical models give different file bytes. Files written
/// before it stored each entry as its own key; both are read.
const METADATA_KEY: &str = "r2unet";

/// One named tensor copied out of a model: PyTorch name, shape, values.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// PyTorch `state_dict` name, e.g. `enc.0.body.1.conv.0.weight`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
    /// Whether it is trained (false for running statistics).
    pub trainable: bool,
}

fn read_tensor<const D: usize>(t: &Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.to_data().convert::<f32>();
    let shape = data.shape().as_slice().to_vec();
    let values = data.try_into_vec::<f32>().expect("converted to f32 above");
    (shape, values)
}

impl UNet {
    /// Every tensor with its PyTorch name, in state-dict order.
    pub fn state_dict(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.clone().visit(&mut |name, slot| {
            let ((shape, values), trainable) = match slot {
                Slot::Param1(p) => (read_tensor(&p.val()), true),
                Slot::Param4(p) => (read_tensor(&p.val()), true),
                Slot::Buffer1(b) => (read_tensor(&b.value_sync()), false),
            };
            out.push(NamedTensor {
                name,
                shape,
                values,
                trainable,
            });
        });
        out
    }

    /// Gives every parameter an id derived from its PyTorch name, so optimizer
    /// state (keyed by id) saved by one process fits the model of another.
    pub(crate) fn assign_stable_ids(&mut self) {
        self.visit(&mut |name, slot| {
            let id = ParamId::from(fnv1a(&name));
            match slot {
                Slot::Param1(p) => *p = with_id(p.clone(), id),
                Slot::Param4(p) => *p = with_id(p.clone(), id),
                Slot::Buffer1(_) => {}
            }
        });
    }

    /// Redraws every convolution's weights and biases from a seeded generator,
    /// with PyTorch's default `Conv2d` initialisation (uniform in
    /// `±1/sqrt(fan_in)`); batch norms keep weight 1 and bias 0. Burn's own
    /// initialisers draw from a process-wide generator, which concurrent work
    /// can advance, so reproducible runs initialise here instead.
    pub fn reinitialize(&mut self, seed: u64) {
        let mut fan_in: HashMap<String, usize> = HashMap::new();
        self.visit(&mut |name, slot| {
            let bound_for = |fan: usize| 1.0 / (fan.max(1) as f32).sqrt();
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(&name));
            match slot {
                Slot::Param4(p) => {
                    let dims = p.shape().as_slice().to_vec();
                    let fan = dims[1] * dims[2] * dims[3];
                    fan_in.insert(name.trim_end_matches(".weight").to_string(), fan);
                    let b = bound_for(fan);
                    let values = (0..dims.iter().product::<usize>())
                        .map(|_| rng.random_range(-b..=b))
                        .collect();
                    *p = replace(p.clone(), TensorData::new(values, dims));
                }
                Slot::Param1(p) => {
                    let Some(&fan) = name
                        .strip_suffix(".bias")
                        .and_then(|prefix| fan_in.get(prefix))
                    else {
                        return;
                    };
                    let n = p.shape().num_elements();
                    let b = bound_for(fan);
                    let values = (0..n).map(|_| rng.random_range(-b..=b)).collect();
                    *p = replace(p.clone(), TensorData::new(values, [n]));
                }
                Slot::Buffer1(_) => {}
            }
        });
    }

    /// Number of trained parameters, as PyTorch's `parameters()` counts them
    /// (Burn's `num_params()` also counts the batch-norm running statistics).
    pub fn num_trainable_params(&self) -> usize {
        let mut n = 0;
        self.clone().visit(&mut |_, slot| {
            n += match slot {
                Slot::Param1(p) => p.shape().num_elements(),
                Slot::Param4(p) => p.shape().num_elements(),
                Slot::Buffer1(_) => 0,
            }
        });
        n
    }

    /// Saves the weights to `path` (safetensors) and the config to `path` with
    /// extension `.json`, each atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that could not be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with(path, &[])
    }

    /// [`UNet::save`] with extra `(key, value)` metadata in the safetensors
    /// header (e.g. the preprocessing a model was trained with), read back by
    /// [`read_metadata`].
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`], before anything is written, for a `path` whose
    /// config file would be itself (a `.json` name) or would replace a JSON
    /// file that is not a model config (such as a run's `config.json`);
    /// [`Error::Io`] naming the file that could not be written.
    pub fn save_with(&self, path: &Path, extra: &[(&str, String)]) -> Result<()> {
        let sidecar = config_path(path);
        if sidecar == path {
            return Err(Error::invalid(
                path.display().to_string(),
                "a weights file name must not end in .json: the model's config is written \
                 beside it as <name>.json",
            ));
        }
        let foreign = std::fs::read(&sidecar)
            .is_ok_and(|bytes| serde_json::from_slice::<UNetConfig>(&bytes).is_err());
        if foreign {
            return Err(Error::invalid(
                path.display().to_string(),
                format!(
                    "its config would be written to {}, which exists and is not a model \
                     config; choose another name",
                    sidecar.display()
                ),
            ));
        }
        let config = serde_json::to_string_pretty(&self.config).expect("config serialises");
        // The pair is replaced only once both are written: new weights never
        // sit beside an old config, which `read_config` would prefer.
        let mut set = Staged::default();
        set.write(path, &self.safetensors_bytes(path, extra)?)?;
        set.write(&sidecar, config.as_bytes())?;
        set.commit()
    }

    /// Writes the safetensors file alone (config and `extra` in its metadata,
    /// no JSON beside it), atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that could not be written.
    pub fn write_safetensors(&self, path: &Path, extra: &[(&str, String)]) -> Result<()> {
        write_atomic(path, &self.safetensors_bytes(path, extra)?)
    }

    /// The safetensors file of [`UNet::write_safetensors`]; `path` names it
    /// in errors.
    fn safetensors_bytes(&self, path: &Path, extra: &[(&str, String)]) -> Result<Vec<u8>> {
        let tensors = self.state_dict();
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .into_iter()
            .map(|t| {
                let raw = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (t.name, raw, t.shape)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, raw, shape)| {
                let view = TensorView::new(Dtype::F32, shape.clone(), raw)
                    .expect("shape and byte length agree by construction");
                (name.clone(), view)
            })
            .collect::<Vec<_>>();
        let mut entries = serde_json::Map::new();
        entries.insert(
            CONFIG_KEY.to_string(),
            serde_json::to_value(&self.config).expect("config serialises"),
        );
        for (k, v) in extra {
            let value =
                serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
            entries.insert(k.to_string(), value);
        }
        let metadata = HashMap::from([(
            METADATA_KEY.to_string(),
            serde_json::Value::Object(entries).to_string(),
        )]);
        safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Where the config JSON of a weights file lives: same stem, `.json`.
pub fn config_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The metadata value under `key` in a safetensors header, if any.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Safetensors`] naming the file.
pub fn read_metadata(weights: &Path, key: &str) -> Result<Option<String>> {
    metadata_of_bytes(&read_file(weights)?, weights, key)
}

/// [`read_metadata`] from the bytes of a safetensors file; `weights` names them in errors.
///
/// # Errors
///
/// [`Error::Safetensors`] naming `weights`.
pub fn metadata_of_bytes(bytes: &[u8], weights: &Path, key: &str) -> Result<Option<String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::Safetensors {
        path: weights.to_path_buf(),
        reason: e.to_string(),
    })?;
    let Some(map) = meta.metadata().as_ref() else {
        return Ok(None);
    };
    if let Some(object) = map.get(METADATA_KEY) {
        let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(object)
            .map_err(|e| Error::Config {
                path: weights.to_path_buf(),
                reason: format!("metadata `{METADATA_KEY}`: {e}"),
            })?;
        return Ok(entries.get(key).map(|v| v.to_string()));
    }
    Ok(map.get(key).cloned())
}

/// Reads the model config of a weights file: the `.json` beside it if present,
/// else the config stored in the safetensors metadata.
///
/// # Errors
///
/// [`Error::Io`], [`Error::Config`] or [`Error::Safetensors`] naming the file; a
/// file with no config (a PyTorch checkpoint) asks for the model to be named.
pub fn read_config(weights: &Path) -> Result<UNetConfig> {
    let json_path = config_path(weights);
    let (source, text) = if json_path.exists() {
        let text = String::from_utf8_lossy(&read_file(&json_path)?).into_owned();
        (json_path, text)
    } else {
        let text = read_metadata(weights, CONFIG_KEY)?.ok_or_else(|| Error::Config {
            path: weights.to_path_buf(),
            reason: format!(
                "no model config in the file and no {} beside it; name the model \
                     (e.g. --model r2unet --preset classic --bn shared for a PyTorch checkpoint)",
                json_path.display()
            ),
        })?;
        (weights.to_path_buf(), text)
    };
    parse_config(&text, &source)
}

/// Loads a model saved by [`UNet::save`] (config found beside or inside the file).
///
/// # Errors
///
/// See [`read_config`] and [`load_weights`].
pub fn load_model(weights: &Path, device: &Device) -> Result<UNet> {
    let config = read_config(weights)?;
    load_weights(&config, weights, device)
}

/// A model from the bytes of a file saved by [`UNet::save`] (its config
/// from the metadata); `name` names them in errors.
///
/// # Errors
///
/// As [`read_config`] and [`import_weights`].
pub fn load_model_bytes(bytes: &[u8], name: &Path, device: &Device) -> Result<UNet> {
    let text = metadata_of_bytes(bytes, name, CONFIG_KEY)?.ok_or_else(|| Error::Config {
        path: name.to_path_buf(),
        reason: "no model config in the file".into(),
    })?;
    let config = parse_config(&text, name)?;
    import_weights_bytes(&config, bytes, name, TorchLayout::Reference, device)
}

fn parse_config(text: &str, source: &Path) -> Result<UNetConfig> {
    let config: UNetConfig = serde_json::from_str(text).map_err(|e| Error::Config {
        path: source.to_path_buf(),
        reason: e.to_string(),
    })?;
    config.validate().map_err(|e| Error::Config {
        path: source.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(config)
}

/// Builds the model of `config` and fills it from a safetensors file with
/// the reference's PyTorch names: ours, or a `state_dict` saved from the
/// PyTorch reference. Same as [`import_weights`] with [`TorchLayout::Reference`].
///
/// # Errors
///
/// See [`import_weights`].
pub fn load_weights(config: &UNetConfig, weights: &Path, device: &Device) -> Result<UNet> {
    import_weights(config, weights, TorchLayout::Reference, device)
}

/// Builds the model of `config` and fills it from a safetensors `state_dict`
/// whose names follow `layout` (`num_batches_tracked` entries are ignored, a
/// `module.` prefix from `DataParallel` is stripped). Only safetensors is read:
/// convert a `.pth` file first (see the README), never unpickled here.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Safetensors`] for an unreadable or corrupt file;
/// [`Error::MissingTensor`], [`Error::UnexpectedTensors`],
/// [`Error::ShapeMismatch`] or [`Error::DType`] naming the tensor when the file
/// does not fit the config.
pub fn import_weights(
    config: &UNetConfig,
    weights: &Path,
    layout: TorchLayout,
    device: &Device,
) -> Result<UNet> {
    import_weights_bytes(config, &read_file(weights)?, weights, layout, device)
}

/// [`import_weights`] from the bytes of a safetensors file (e.g. weights
/// embedded in a binary); `weights` names them in errors.
///
/// # Errors
///
/// As [`import_weights`].
pub fn import_weights_bytes(
    config: &UNetConfig,
    bytes: &[u8],
    weights: &Path,
    layout: TorchLayout,
    device: &Device,
) -> Result<UNet> {
    let corrupt = |e: safetensors::SafeTensorError| Error::Safetensors {
        path: weights.to_path_buf(),
        reason: e.to_string(),
    };
    let file = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let depth = config.widths.len();
    let mut available: BTreeMap<String, (String, TensorView<'_>)> = BTreeMap::new();
    for (name, view) in file.tensors() {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let plain = name.strip_prefix("module.").unwrap_or(&name);
        let ours = layout
            .to_reference(plain, depth)
            .unwrap_or_else(|| plain.to_string());
        available.insert(ours, (name, view));
    }
    let mut model = config.init(device);
    let mut failure: Option<Error> = None;
    model.visit(&mut |name, slot| {
        if failure.is_some() {
            return;
        }
        let result = take_tensor(&mut available, &name, weights)
            .and_then(|(shape, values)| assign(slot, &name, shape, values, weights));
        if let Err(e) = result {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some((original, _)) = available.values().next() {
        return Err(Error::UnexpectedTensors {
            path: weights.to_path_buf(),
            count: available.len(),
            example: original.clone(),
        });
    }
    Ok(model)
}

fn take_tensor(
    available: &mut BTreeMap<String, (String, TensorView<'_>)>,
    name: &str,
    path: &Path,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let (_, view) = available.remove(name).ok_or_else(|| Error::MissingTensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
    })?;
    tensor_values(&view, name, path)
}

/// Shape and values of a safetensors tensor as `f32` (`f64` narrowed).
///
/// # Errors
///
/// Any other dtype, naming the file and the tensor.
pub(crate) fn tensor_values(
    view: &TensorView<'_>,
    name: &str,
    path: &Path,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let values = match view.dtype() {
        Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(Error::DType {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    Ok((view.shape().to_vec(), values))
}

fn assign(
    slot: Slot<'_>,
    name: &str,
    shape: Vec<usize>,
    values: Vec<f32>,
    path: &Path,
) -> Result<()> {
    let expected: Vec<usize> = match &slot {
        Slot::Param1(p) => p.shape().as_slice().to_vec(),
        Slot::Param4(p) => p.shape().as_slice().to_vec(),
        Slot::Buffer1(b) => b.value().shape().as_slice().to_vec(),
    };
    if expected != shape {
        return Err(Error::ShapeMismatch {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            expected,
            found: shape,
        });
    }
    let data = TensorData::new(values, shape);
    match slot {
        Slot::Param1(p) => *p = replace(p.clone(), data),
        Slot::Param4(p) => *p = replace(p.clone(), data),
        Slot::Buffer1(b) => {
            let device = b.value().device();
            *b = RunningState::new(Tensor::from_data(data, &device));
        }
    }
    Ok(())
}

/// 64-bit FNV-1a hash: a stable id for a tensor name.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn with_id<const D: usize>(param: Param<Tensor<D>>, id: ParamId) -> Param<Tensor<D>> {
    let (_, value, mapper) = param.consume();
    Param::from_mapped_value(id, value, mapper)
}

/// Replaces a parameter's value, keeping its id (optimizer state is keyed by it),
/// device and gradient requirement.
fn replace<const D: usize>(param: Param<Tensor<D>>, data: TensorData) -> Param<Tensor<D>> {
    param.map(|old| {
        let fresh = Tensor::from_data(data, &old.device());
        if old.is_require_grad() {
            fresh.require_grad()
        } else {
            fresh
        }
    })
}
