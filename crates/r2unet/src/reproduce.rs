//! The paper's experiments as data: where each dataset lives under a data
//! root, how `r2unet reproduce --train` trains on it, how it is evaluated,
//! and the numbers the paper reports (from `../shared/PAPER.md`, the results
//! table as published on Papers with Code).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{DatasetKind, LoadOptions};
use crate::model::{Architecture, Preset};
use crate::train::{LossKind, Schedule, TrainConfig};

/// The paper's reported figures for one dataset (R2U-Net unless stated).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PaperRow {
    /// F1 (Dice).
    pub f1: Option<f64>,
    /// Sensitivity.
    pub se: Option<f64>,
    /// Specificity.
    pub sp: Option<f64>,
    /// Accuracy.
    pub acc: Option<f64>,
    /// ROC AUC.
    pub auc: Option<f64>,
}

/// The paper's numbers for `model` on `kind`, where it reports them: R2U-Net
/// on every retina set and skin lesions (ISIC 2017, here compared on PH2),
/// the U-Net baseline on DRIVE and STARE, ResU-Net's F1 on STARE.
pub fn paper(kind: DatasetKind, model: Architecture) -> Option<PaperRow> {
    let row = |f1, se, sp, acc, auc| PaperRow {
        f1: Some(f1),
        se,
        sp,
        acc,
        auc,
    };
    match (kind, model) {
        (DatasetKind::Drive, Architecture::R2unet) => Some(row(
            0.8171,
            Some(0.7792),
            Some(0.9813),
            Some(0.9556),
            Some(0.9784),
        )),
        (DatasetKind::Drive, Architecture::Unet) => {
            Some(row(0.8142, Some(0.7537), None, Some(0.9531), Some(0.9755)))
        }
        (DatasetKind::Stare, Architecture::R2unet) => {
            Some(row(0.8475, None, None, None, Some(0.9914)))
        }
        (DatasetKind::Stare, Architecture::Unet) => Some(row(0.8373, None, None, None, None)),
        (DatasetKind::Stare, Architecture::Resunet) => Some(row(0.8388, None, None, None, None)),
        (DatasetKind::Chase, Architecture::R2unet) => {
            Some(row(0.7928, None, None, None, Some(0.9815)))
        }
        (DatasetKind::Ph2, Architecture::R2unet) => {
            Some(row(0.892, None, None, None, Some(0.9419)))
        }
        _ => None,
    }
}

/// The project's goals (issue 7): `(F1 at least, AUC at least)`.
pub fn goal(kind: DatasetKind) -> Option<(f64, Option<f64>)> {
    match kind {
        DatasetKind::Drive => Some((0.820, Some(0.980))),
        DatasetKind::Stare => Some((0.83, Some(0.985))),
        DatasetKind::Ph2 => Some((0.90, None)),
        DatasetKind::Lung => Some((0.97, None)),
        _ => None,
    }
}

/// The folder of `kind` under a data root laid out like `../shared/data`
/// (`DRIVE/`, `STARE/`, `CHASE_DB1/` or `CHASE/`, `PH2/`, `LUNG/`); `None` if absent.
pub fn dataset_dir(root: &Path, kind: DatasetKind) -> Option<PathBuf> {
    let names: &[&str] = match kind {
        DatasetKind::Drive => &["DRIVE"],
        DatasetKind::Stare => &["STARE"],
        DatasetKind::Chase => &["CHASE_DB1", "CHASE"],
        DatasetKind::Ph2 => &["PH2"],
        DatasetKind::Lung => &["LUNG"],
        DatasetKind::Folder | DatasetKind::Nifti => &[],
    };
    names.iter().map(|n| root.join(n)).find(|p| p.is_dir())
}

/// How `reproduce --train` trains `model` on `kind`: the default retina
/// protocol (48x48 FOV patches, 600 per image, 10 epochs, batch 32) for
/// fundus sets; whole images resized to 128 (PH2, 50 epochs) or 192 (lung
/// CT, 40 epochs), batch 8, for the others. Retina widths throughout: the
/// classic 39 M-parameter preset is out of reach of a 2-core CPU.
pub fn train_config(kind: DatasetKind, model: Architecture, data: &Path) -> TrainConfig {
    let (epochs, patches_per_image, patch_size, batch_size) = match kind {
        DatasetKind::Ph2 => (50, 1, 128, 8),
        DatasetKind::Lung => (40, 1, 192, 8),
        _ => (10, 600, 48, 32),
    };
    TrainConfig {
        dataset: kind,
        data: Some(data.to_path_buf()),
        synthetic_images: 0,
        load: LoadOptions::default(),
        model: Preset::Retina.config(model).with_patch_size(patch_size),
        epochs,
        patches_per_image,
        patch_size,
        batch_size,
        lr: 1e-3,
        schedule: Schedule::Cosine,
        loss: LossKind::Bce,
        pos_weight: None,
        val_fraction: 0.1,
        augment: true,
        seed: 0,
        checkpoint_minutes: 5.0,
        init: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_configs_are_valid_and_paper_rows_match_paper_md() {
        for kind in [
            DatasetKind::Drive,
            DatasetKind::Stare,
            DatasetKind::Chase,
            DatasetKind::Ph2,
            DatasetKind::Lung,
        ] {
            for model in Architecture::ALL {
                train_config(kind, model, Path::new("x"))
                    .validate()
                    .unwrap();
            }
        }
        let drive = paper(DatasetKind::Drive, Architecture::R2unet).unwrap();
        assert_eq!((drive.f1, drive.auc), (Some(0.8171), Some(0.9784)));
        assert!(paper(DatasetKind::Lung, Architecture::R2unet).is_none());
    }
}
