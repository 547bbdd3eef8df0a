//! One self-contained weights file from a run folder: the chosen
//! checkpoint's tensors with the model config, the preprocessing and where
//! the weights came from (the run's budget) in the safetensors metadata.

use std::path::Path;

use super::checkpoint::{RunDir, load_checkpoint};
use super::prepare::with_ct_window;
use crate::device::Device;
use crate::error::Result;
use crate::model::read_metadata;

/// Metadata key of where exported weights came from.
pub const PROVENANCE_KEY: &str = "r2unet_provenance";

/// Writes the best (or last) checkpoint of the run in `run` to `out`
/// (safetensors, with a `.json` config beside it), with its preprocessing
/// and [`provenance`].
///
/// # Errors
///
/// A run folder without config, state or checkpoint, or an unwritable
/// `out`, naming the file.
pub fn export_run(run: &Path, best: bool, out: &Path, device: &Device) -> Result<()> {
    let dir = RunDir(run.to_path_buf());
    let weights = if best { dir.best() } else { dir.last() };
    let (model, preprocess) = load_checkpoint(&weights, device)?;
    let preprocess = with_ct_window(preprocess, &dir.read_config()?);
    let provenance = provenance(run, &weights)?;
    model.save_with(
        out,
        &[
            preprocess.metadata(),
            (PROVENANCE_KEY, provenance.to_string()),
        ],
    )
}

/// Where the checkpoint `weights` of the run in `run` came from: the run
/// folder's name (not its full path, which would only name this machine),
/// the checkpoint's file name, the dataset, the budget, the seed, the
/// weights it started from, and whether it trained on every image.
///
/// # Errors
///
/// A run folder without a readable config or state, naming the file.
pub fn provenance(run: &Path, weights: &Path) -> Result<serde_json::Value> {
    let dir = RunDir(run.to_path_buf());
    let (config, state) = (dir.read_config()?, dir.read_state()?);
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut provenance = serde_json::json!({
        "run": name(run),
        "checkpoint": name(weights),
        "dataset": config.data.as_ref().map_or("synthetic".to_string(), |_| config.dataset.to_string()),
        "epochs": state.epoch,
        "steps": state.steps,
        "patches_seen": state.steps * config.batch_size,
        "patches_per_image": config.patches_per_image,
        "best_val_auc": state.best_auc,
        "train_seconds": state.elapsed_s.round(),
        "seed": config.seed,
        "init": config.init,
    });
    if config.all_images {
        provenance["all_images"] = true.into();
    }
    Ok(provenance)
}

/// The provenance recorded in exported weights (see [`provenance`]);
/// `None` when the file has none. Weights exported before only the run
/// folder's name was kept recorded its full path: reduced to the name.
///
/// # Errors
///
/// An unreadable file or header, naming the file.
pub fn read_provenance(weights: &Path) -> Result<Option<serde_json::Value>> {
    let recorded = read_metadata(weights, PROVENANCE_KEY)?
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok());
    Ok(recorded.map(|mut p| {
        if let Some(run) = p.get_mut("run")
            && let Some(name) = run
                .as_str()
                .and_then(|r| Path::new(r).file_name())
                .map(|n| n.to_string_lossy().into_owned())
        {
            *run = serde_json::Value::String(name);
        }
        p
    }))
}

/// Whether `weights` were trained on every image of their dataset
/// (`TrainConfig::all_images`), as their provenance or the run folder they
/// sit in records: their metrics on that dataset's test split are then not
/// held out.
///
/// # Errors
///
/// An unreadable weights file or run config, naming the file.
pub fn trained_on_every_image(weights: &Path) -> Result<bool> {
    if let Some(p) = read_provenance(weights)? {
        return Ok(p["all_images"].as_bool() == Some(true));
    }
    let run = RunDir(weights.parent().unwrap_or(Path::new(".")).to_path_buf());
    Ok(run.config().is_file() && run.read_config()?.all_images)
}
