//! A run folder: `config.json`, `state.json` (where training stands),
//! `last.safetensors` + `last.optim` (model and Adam state to resume from),
//! `best.safetensors` (best validation AUC), `metrics.csv`. Every file is
//! written atomically, so a run killed at any moment keeps a loadable checkpoint.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::prepare::Preprocess;
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::model::{UNet, load_model};
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
    /// `last.optim` (Burn's burnpack bytes of the Adam state).
    pub fn optim(&self) -> PathBuf {
        self.0.join("last.optim")
    }
    /// `best.safetensors`.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.safetensors")
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

    /// Writes the model, the optimizer state, then the state (last, so a crash
    /// between files leaves the previous state pointing at consistent files).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that failed; earlier checkpoints stay intact.
    pub fn checkpoint(
        &self,
        model: &UNet,
        optim: &ModuleOptimizer,
        state: &RunState,
    ) -> Result<()> {
        let bytes = optim.into_bytes().map_err(|e| Error::Io {
            path: self.optim(),
            source: std::io::Error::other(e.to_string()),
        })?;
        model.save_with(&self.last(), &[state.preprocess.metadata()])?;
        write_atomic(&self.optim(), &bytes)?;
        let json = serde_json::to_string_pretty(state).expect("state serialises");
        write_atomic(&self.state(), json.as_bytes())?;
        write_atomic(&self.csv(), csv(&state.history).as_bytes())?;
        if !state.history.is_empty() {
            write_png(&self.curves(), &curves(&state.history), 1200, 420)?;
        }
        Ok(())
    }

    /// The last model and optimizer state, on `device`.
    ///
    /// # Errors
    ///
    /// Read errors naming the file.
    pub fn restore(
        &self,
        device: &Device,
        optim: ModuleOptimizer,
    ) -> Result<(UNet, ModuleOptimizer)> {
        let model = load_model(&self.last(), device)?;
        let bytes = std::fs::read(self.optim()).map_err(|e| Error::io(self.optim(), e))?;
        let optim = optim
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::Config {
                path: self.optim(),
                reason: e.to_string(),
            })?;
        Ok((model, optim))
    }
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
