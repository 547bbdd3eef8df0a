//! Weights on disk: round trip, config beside the file, and clear errors.

use burn::tensor::{Device, Distribution, Tensor};
use r2unet::Error;
use r2unet::model::{Architecture, BnMode, Preset, config_path, load_model, load_weights};

fn small(arch: Architecture) -> r2unet::model::UNetConfig {
    Preset::Retina.config(arch).with_widths(vec![4, 8])
}

#[test]
fn save_then_load_gives_the_same_tensors_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let device = Device::flex();
    let model = small(Architecture::Attr2unet).init(&device);
    model.save(&path).unwrap();
    assert!(
        config_path(&path).exists(),
        "config JSON beside the weights"
    );

    let loaded = load_model(&path, &device).unwrap();
    assert_eq!(loaded.config, model.config);
    assert_eq!(loaded.state_dict(), model.state_dict());
    let x = Tensor::<4>::random([1, 1, 8, 8], Distribution::Default, &device);
    let a = model.forward(x.clone()).into_data();
    let b = loaded.forward(x).into_data();
    assert_eq!(a, b);

    // Without the JSON, the config stored in the file's metadata is used.
    std::fs::remove_file(config_path(&path)).unwrap();
    assert_eq!(load_model(&path, &device).unwrap().config, model.config);
}

#[test]
fn saving_never_replaces_a_json_file_that_is_not_the_models_config() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(Architecture::Unet).init(&Device::flex());
    // A `.json` name would be its own config file: the weights would be lost.
    let json = dir.path().join("model.json");
    let err = model.save(&json).unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains(".json"), "{err}");
    assert!(!json.exists(), "nothing written");
    // A run folder's `config.json` beside `config.safetensors` stays.
    let run_config = dir.path().join("config.json");
    std::fs::write(&run_config, r#"{"dataset": "lung"}"#).unwrap();
    let err = model
        .save(&dir.path().join("config.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("not a model"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&run_config).unwrap(),
        r#"{"dataset": "lung"}"#
    );
    assert!(!dir.path().join("config.safetensors").exists());
    // A model's own config beside it is replaced, as every save does.
    let path = dir.path().join("w.safetensors");
    model.save(&path).unwrap();
    model.save(&path).unwrap();
}

#[test]
fn weights_and_their_config_are_replaced_together_or_not_at_all() {
    if !std::path::Path::new("/dev/full").exists() {
        println!("skipped: no /dev/full on this system to simulate a full disk");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let path = dir.path().join("w.safetensors");
    small(Architecture::Unet).init(&device).save(&path).unwrap();
    let (old_weights, old_config) = (
        std::fs::read(&path).unwrap(),
        std::fs::read(config_path(&path)).unwrap(),
    );
    // Another model over it, and the config's write (the second) meets a
    // full disk: this thread's temporary file for it is /dev/full.
    let temp = r2unet::atomic::temp_path(&config_path(&path), "").unwrap();
    std::os::unix::fs::symlink("/dev/full", &temp).unwrap();
    let err = small(Architecture::R2unet)
        .init(&device)
        .save(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("w.json") && err.contains("No space"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), old_weights, "weights kept");
    assert_eq!(std::fs::read(config_path(&path)).unwrap(), old_config);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporaries"
    );
}

#[test]
fn a_file_of_another_config_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    small(Architecture::R2unet)
        .init(&Device::flex())
        .save(&path)
        .unwrap();
    let wider = Preset::Retina
        .config(Architecture::R2unet)
        .with_widths(vec![4, 16]);
    let err = load_weights(&wider, &path, &Device::flex()).unwrap_err();
    match &err {
        Error::ShapeMismatch {
            tensor,
            expected,
            found,
            ..
        } => {
            assert_eq!(tensor, "enc.1.proj.weight");
            assert_eq!(expected, &vec![16, 4, 1, 1]);
            assert_eq!(found, &vec![8, 4, 1, 1]);
        }
        other => panic!("unexpected error {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("w.safetensors") && text.contains("enc.1.proj.weight"),
        "{text}"
    );
}

#[test]
fn a_file_of_another_batch_norm_mode_names_a_missing_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    small(Architecture::R2unet)
        .with_bn(BnMode::Shared)
        .init(&Device::flex())
        .save(&path)
        .unwrap();
    let err = load_weights(&small(Architecture::R2unet), &path, &Device::flex()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "enc.0.body.0.conv.weight"),
        "{err}"
    );
}

#[test]
fn a_file_with_extra_tensors_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    small(Architecture::Attr2unet)
        .init(&Device::flex())
        .save(&path)
        .unwrap();
    let err = load_weights(&small(Architecture::R2unet), &path, &Device::flex()).unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedTensors { example, .. } if example.starts_with("att.0")),
        "{err}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    small(Architecture::Unet)
        .init(&Device::flex())
        .save(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let config = small(Architecture::Unet);

    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_weights(&config, &path, &Device::flex()).unwrap_err();
    assert!(matches!(err, Error::Safetensors { .. }), "{err}");
    assert!(err.to_string().contains("w.safetensors"));

    std::fs::write(&path, b"not a safetensors file at all").unwrap();
    let err = load_weights(&config, &path, &Device::flex()).unwrap_err();
    assert!(matches!(err, Error::Safetensors { .. }), "{err}");

    let missing = dir.path().join("absent.safetensors");
    let err = load_model(&missing, &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

#[test]
fn a_pytorch_checkpoint_without_config_asks_for_the_model() {
    let fixture = super::fixtures().join("parity/r2unet/weights.safetensors");
    let err = load_model(&fixture, &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("--model"), "{err}");
}

#[test]
fn a_broken_config_json_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    small(Architecture::Unet)
        .init(&Device::flex())
        .save(&path)
        .unwrap();
    std::fs::write(config_path(&path), "{\"architecture\": \"r3unet\"}").unwrap();
    let err = load_model(&path, &Device::flex()).unwrap_err();
    assert!(
        matches!(err, Error::Config { .. }) && err.to_string().contains("w.json"),
        "{err}"
    );
}
