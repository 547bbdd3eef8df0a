//! A run folder: `config.json`, `state.json` (where training stands),
//! `ckpt-<steps>.safetensors` + `ckpt-<steps>.optim` (model and Adam state to
//! resume from), `last.safetensors` (a hard link to the newest checkpoint's
//! model), `best.safetensors` (best validation AUC), `metrics.csv`,
//! `curves.png`.
//!
//! Every file is written atomically, and a checkpoint commits in one step:
//! its model and optimizer files are written under new names first, then
//! `state.json`, which names them, replaces the previous one; only then are
//! the older files removed. A run killed at any moment therefore resumes from
//! a model, optimizer state and counters that belong together.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use crate::atomic::{temp_path, write_atomic};
use crate::error::{Error, Result};
use crate::model::Preprocess;
use crate::model::{UNet, config_path, load_model};
use crate::plot::{Chart, Series, write_png};

/// One epoch's line of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Mean validation loss (eval-mode model); `None` without validation patches.
    pub val_loss: Option<f64>,
    /// Validation ROC AUC inside the FOV, pooled over validation patches
    /// (`None` without validation patches or without both classes).
    pub val_auc: Option<f64>,
    /// Validation F1 at threshold 0.5 inside the FOV, pooled.
    pub val_f1: Option<f64>,
    /// Learning rate at the epoch's end.
    pub lr: f64,
    /// Training patches per second during the epoch.
    pub patches_per_s: f64,
    /// Wall seconds since the run started (summed over resumes).
    pub elapsed_s: f64,
    /// Optimizer steps completed at the epoch's end (0 in runs written
    /// before it was recorded).
    #[serde(default)]
    pub steps: usize,
}

/// Where a run stands; written with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed within the current epoch.
    pub step_in_epoch: usize,
    /// Optimizer steps completed in all.
    pub steps: usize,
    /// Sum of training losses within the current epoch (to resume its mean).
    pub epoch_loss_sum: f64,
    /// Best validation AUC so far (`None` before the first validation).
    pub best_auc: Option<f64>,
    /// Wall seconds trained so far.
    pub elapsed_s: f64,
    /// How inputs are preprocessed (fitted on the training images).
    pub preprocess: Preprocess,
    /// One record per completed epoch.
    pub history: Vec<EpochRecord>,
    /// Stem of the checkpoint files this state belongs to (`ckpt-00001234`);
    /// `None` in runs written before checkpoints were named (`last.*`).
    #[serde(default)]
    pub checkpoint: Option<String>,
}

/// The files of a run folder.
#[derive(Debug, Clone)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
    /// `last.safetensors`.
    pub fn last(&self) -> PathBuf {
        self.0.join("last.safetensors")
    }
    /// `last.optim`: the Adam state (Burn's burnpack bytes) of runs written
    /// before checkpoints were named; newer runs keep it in `ckpt-<steps>.optim`.
    pub fn optim(&self) -> PathBuf {
        self.0.join("last.optim")
    }
    /// `best.safetensors`.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.safetensors")
    }
    /// `epoch-NNN.safetensors`: the model at the end of `epoch` (from 1),
    /// kept when the run was configured to.
    pub fn epoch_model(&self, epoch: usize) -> PathBuf {
        self.0.join(format!("epoch-{epoch:03}.safetensors"))
    }

    /// The kept epoch models, by epoch.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the folder.
    pub fn epoch_models(&self) -> Result<Vec<(usize, PathBuf)>> {
        let read = std::fs::read_dir(&self.0).map_err(|e| Error::io(&self.0, e))?;
        let mut models = Vec::new();
        for item in read {
            let path = item.map_err(|e| Error::io(&self.0, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(epoch) = name
                .strip_prefix("epoch-")
                .and_then(|n| n.strip_suffix(".safetensors"))
                .and_then(|n| n.parse().ok())
            {
                models.push((epoch, path));
            }
        }
        models.sort();
        Ok(models)
    }

    /// `curves.png` (losses, validation AUC and F1 per epoch).
    pub fn curves(&self) -> PathBuf {
        self.0.join("curves.png")
    }

    /// `metrics.csv`.
    pub fn csv(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }

    /// Creates the folder and proves it writable before any training starts.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the folder.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.0).map_err(|e| Error::io(&self.0, e))?;
        write_atomic(&self.0.join(".write-test"), b"ok")?;
        std::fs::remove_file(self.0.join(".write-test")).map_err(|e| Error::io(&self.0, e))
    }

    /// Saves the config.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file.
    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        let json = serde_json::to_string_pretty(config).expect("config serialises");
        write_atomic(&self.config(), json.as_bytes())
    }

    /// Reads the config of an existing run.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Config`] naming the file.
    pub fn read_config(&self) -> Result<TrainConfig> {
        read_json(&self.config())
    }

    /// Reads where the run stands.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Config`] naming the file.
    pub fn read_state(&self) -> Result<RunState> {
        read_json(&self.state())
    }

    /// Writes a checkpoint: model and optimizer under a new name, then
    /// `state.json` naming them (the commit point), then `last.safetensors`,
    /// the CSV and the curves; older checkpoint files are removed last.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that failed; the previous checkpoint stays
    /// intact and is still the one `state.json` names.
    pub fn checkpoint(
        &self,
        model: &UNet,
        optim: &ModuleOptimizer,
        state: &mut RunState,
    ) -> Result<()> {
        let stem = format!("ckpt-{:08}", state.steps);
        let model_file = self.0.join(format!("{stem}.safetensors"));
        let optim_file = self.0.join(format!("{stem}.optim"));
        let bytes = optim.into_bytes().map_err(|e| Error::Io {
            path: optim_file.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        model.write_safetensors(&model_file, &[state.preprocess.metadata()])?;
        write_atomic(&optim_file, &bytes)?;
        let previous = state.checkpoint.replace(stem.clone());
        let json = serde_json::to_string_pretty(&*state).expect("state serialises");
        if let Err(e) = write_atomic(&self.state(), json.as_bytes()) {
            state.checkpoint = previous;
            return Err(e);
        }
        link_atomic(&model_file, &self.last())?;
        let config = serde_json::to_string_pretty(&model.config).expect("config serialises");
        write_atomic(&config_path(&self.last()), config.as_bytes())?;
        self.remove_stale(Some(&stem))?;
        write_atomic(&self.csv(), csv(&state.history).as_bytes())?;
        if !state.history.is_empty() {
            write_png(&self.curves(), &curves(&state.history), 1200, 420)?;
        }
        Ok(())
    }

    /// Removes checkpoint files other than `keep`'s and temporary files left
    /// by writes that a crash cut short.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the folder or file.
    pub fn remove_stale(&self, keep: Option<&str>) -> Result<()> {
        let read = std::fs::read_dir(&self.0).map_err(|e| Error::io(&self.0, e))?;
        for item in read {
            let path = item.map_err(|e| Error::io(&self.0, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let stale_ckpt =
                name.starts_with("ckpt-") && keep.is_none_or(|k| name.split('.').next() != Some(k));
            if stale_ckpt || name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// The model and optimizer state of the checkpoint `state` names, on `device`.
    ///
    /// # Errors
    ///
    /// Read errors naming the file.
    pub fn restore(
        &self,
        state: &RunState,
        device: &Device,
        optim: ModuleOptimizer,
    ) -> Result<(UNet, ModuleOptimizer)> {
        let (model_file, optim_file) = match &state.checkpoint {
            Some(stem) => (
                self.0.join(format!("{stem}.safetensors")),
                self.0.join(format!("{stem}.optim")),
            ),
            None => (self.last(), self.optim()),
        };
        let model = load_model(&model_file, device)?;
        let bytes = std::fs::read(&optim_file).map_err(|e| Error::io(&optim_file, e))?;
        let optim = optim
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::Config {
                path: optim_file.clone(),
                reason: e.to_string(),
            })?;
        Ok((model, optim))
    }
}

/// Points `link` at `target`'s file (a hard link made under a temporary name,
/// then renamed over `link`); copies where hard links are not supported.
fn link_atomic(target: &Path, link: &Path) -> Result<()> {
    let tmp = temp_path(link, "")?;
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(target, &tmp).is_err() {
        let bytes = std::fs::read(target).map_err(|e| Error::io(target, e))?;
        return write_atomic(link, &bytes);
    }
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(link, e)
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The training curves: losses, and validation AUC and F1 (0..1), per epoch.
pub fn curves(history: &[EpochRecord]) -> Vec<Chart> {
    let line = |name: &str, f: &dyn Fn(&EpochRecord) -> Option<f64>| Series {
        name: name.to_string(),
        points: history
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect(),
    };
    vec![
        Chart {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![
                line("train", &|r| Some(r.train_loss)),
                line("validation", &|r| r.val_loss),
            ],
            y_range: None,
        },
        Chart {
            title: "validation (inside the FOV)".into(),
            x_label: "epoch".into(),
            y_label: "metric".into(),
            series: vec![
                line("ROC AUC", &|r| r.val_auc),
                line("F1 at 0.5", &|r| r.val_f1),
            ],
            y_range: Some((0.0, 1.0)),
        },
    ]
}

/// The training log as CSV.
pub fn csv(history: &[EpochRecord]) -> String {
    let mut out =
        String::from("epoch,train_loss,val_loss,val_auc,val_f1,lr,patches_per_s,elapsed_s\n");
    for r in history {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        out.push_str(&format!(
            "{},{:.6},{},{},{},{:.3e},{:.1},{:.1}\n",
            r.epoch,
            r.train_loss,
            opt(r.val_loss),
            opt(r.val_auc),
            opt(r.val_f1),
            r.lr,
            r.patches_per_s,
            r.elapsed_s
        ));
    }
    out
}

/// A checkpoint's model and the preprocessing the run recorded in it (every
/// model file a run writes carries it).
///
/// # Errors
///
/// Read errors naming the file; [`Error::Config`] when no preprocessing is
/// recorded in it.
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<(UNet, Preprocess)> {
    let model = load_model(path, device)?;
    let preprocess = Preprocess::of_file(path)?.ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        reason: "no preprocessing recorded: not a checkpoint written by `r2unet train`".into(),
    })?;
    Ok((model, preprocess))
}
