//! One self-contained weights file from a run folder: the chosen
//! checkpoint's tensors with the model config, the preprocessing and where
//! the weights came from (the run's budget) in the safetensors metadata.

use std::path::Path;

use super::RunDir;
use crate::device::Device;
use crate::error::Result;
use crate::segment::TrainedModel;

/// Metadata key of where exported weights came from.
pub const PROVENANCE_KEY: &str = "r2unet_provenance";

/// Writes the best (or last) checkpoint of the run in `run` to `out`
/// (safetensors, with a `.json` config beside it), with its preprocessing
/// and provenance: the run folder's name (not its full path, which would
/// only name this machine), the checkpoint, the dataset and the budget.
///
/// # Errors
///
/// A run folder without config, state or checkpoint, or an unwritable
/// `out`, naming the file.
pub fn export_run(run: &Path, best: bool, out: &Path, device: &Device) -> Result<()> {
    let dir = RunDir(run.to_path_buf());
    let weights = if best { dir.best() } else { dir.last() };
    let TrainedModel {
        model, preprocess, ..
    } = TrainedModel::load(&weights, device)?;
    let (config, state) = (dir.read_config()?, dir.read_state()?);
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut provenance = serde_json::json!({
        "run": name(run),
        "checkpoint": name(&weights),
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
    model.save_with(
        out,
        &[
            preprocess.metadata(),
            (PROVENANCE_KEY, provenance.to_string()),
        ],
    )
}
