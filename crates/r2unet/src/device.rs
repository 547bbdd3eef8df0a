//! Compute devices chosen at run time: the pure-Rust CPU backend (`flex`) is
//! always built; GPUs need a cargo feature (`vulkan` or `wgpu`).

use std::fmt;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use burn::tensor::Tensor;

pub use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::threads::panic_message;

/// A device the user can name with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Burn's pure-Rust `flex` CPU backend (default, always available).
    Cpu,
    /// A GPU through wgpu pinned to Vulkan (cargo feature `vulkan`).
    Vulkan,
    /// A GPU through wgpu on the best API it finds (cargo feature `wgpu`).
    Wgpu,
    /// NVIDIA CUDA (cargo feature `cuda`; Burn downloads an LLVM bundle to build it).
    Cuda,
}

impl DeviceChoice {
    /// Every choice, for help texts.
    pub const ALL: [DeviceChoice; 4] = [
        DeviceChoice::Cpu,
        DeviceChoice::Vulkan,
        DeviceChoice::Wgpu,
        DeviceChoice::Cuda,
    ];

    /// The `--device` name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Vulkan => "vulkan",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// Whether this build includes the backend.
    pub fn compiled(self) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Vulkan => cfg!(feature = "vulkan"),
            DeviceChoice::Wgpu => cfg!(feature = "wgpu"),
            DeviceChoice::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The Burn device for inference (no autodiff). Use `.autodiff()` on it to train.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] naming the cargo feature to build with when the backend
    /// is not compiled in.
    pub fn device(self) -> Result<Device> {
        if !self.compiled() {
            return Err(Error::Device(format!(
                "device `{}` is not compiled into this build; rebuild with \
                 `cargo build --release -p r2unet-cli --features {}`",
                self.name(),
                self.name()
            )));
        }
        let device = self.make();
        if self != DeviceChoice::Cpu {
            probe(&device, self.name(), PROBE_TIMEOUT)?;
        }
        Ok(device)
    }

    /// The Burn device of the `index`-th GPU of this kind (Vulkan/wgpu count
    /// discrete GPUs, CUDA its device ordinals); the CPU has one device.
    ///
    /// # Errors
    ///
    /// As [`Self::device`].
    pub fn device_at(self, index: usize) -> Result<Device> {
        if !self.compiled() || self == DeviceChoice::Cpu {
            return self.device();
        }
        let device = self.make_at(Some(index));
        probe(&device, &format!("{}:{index}", self.name()), PROBE_TIMEOUT)?;
        Ok(device)
    }

    fn make(self) -> Device {
        self.make_at(None)
    }

    #[allow(unused_variables)] // `index` is unused in a CPU-only build.
    fn make_at(self, index: Option<usize>) -> Device {
        #[cfg(any(feature = "vulkan", feature = "wgpu"))]
        let kind = index.map_or(burn::tensor::DeviceKind::DefaultDevice, |i| {
            burn::tensor::DeviceKind::DiscreteGpu(i)
        });
        match self {
            #[cfg(feature = "vulkan")]
            DeviceChoice::Vulkan => Device::vulkan(kind),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Device::wgpu(kind),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Device::cuda(index.unwrap_or(0)),
            _ => Device::flex(),
        }
    }
}

/// How long a GPU may take to answer its first computation (which includes
/// compiling its first kernels) before it is declared unresponsive.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Sums four ones on `device` in a helper thread and waits at most `timeout`.
///
/// A GPU backend whose device thread panics (cubecl does on some drivers,
/// BENCHMARKS.md, GPU) leaves its callers waiting forever; probing first turns
/// that into an error naming the device instead of a hung command.
fn probe(device: &Device, name: &str, timeout: Duration) -> Result<()> {
    let device = device.clone();
    let answer = answer_within(timeout, move || {
        Tensor::<1>::ones([4], &device).sum().into_scalar::<f32>()
    });
    match answer {
        Some(Ok(4.0)) => Ok(()),
        Some(Ok(sum)) => Err(Error::Device(format!(
            "device `{name}` computed 1+1+1+1 = {sum}; its backend is not usable"
        ))),
        Some(Err(message)) => Err(Error::Device(format!(
            "device `{name}` failed its first computation: {message}"
        ))),
        None => Err(Error::Device(format!(
            "device `{name}` did not answer a four-element sum within {} s; its backend \
             thread probably failed (see any message above); use --device cpu",
            timeout.as_secs()
        ))),
    }
}

/// `f()` in a new thread: its value, its panic message, or `None` when it has
/// not finished within `timeout` (the thread is then left behind).
fn answer_within<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<std::result::Result<T, String>> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|payload| panic_message(payload.as_ref()));
        let _ = send.send(result);
    });
    receive.recv_timeout(timeout).ok()
}

/// The devices of a `--devices` list: comma-separated `NAME` or `NAME:INDEX`,
/// e.g. `cuda:0,cuda:1`, `vulkan:0,vulkan:1`, or `cpu,cpu` (two replicas
/// sharing the one CPU device).
///
/// # Errors
///
/// [`Error::Invalid`] naming the entry for an empty list, an unknown name, a
/// bad index or an index on `cpu`; [`Error::Device`] for a device not compiled in.
pub fn parse_devices(list: &str) -> Result<Vec<Device>> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.iter().any(|e| e.is_empty()) {
        return Err(Error::invalid(
            "devices",
            format!("`{list}`; expected a comma-separated list such as cpu,cpu or cuda:0,cuda:1"),
        ));
    }
    entries
        .into_iter()
        .map(|entry| {
            let (name, index) = match entry.split_once(':') {
                None => (entry, None),
                Some((name, index)) => {
                    let index = index.parse::<usize>().map_err(|_| {
                        Error::invalid(
                            "devices",
                            format!("`{entry}`: the index after `:` must be a number"),
                        )
                    })?;
                    (name, Some(index))
                }
            };
            let choice: DeviceChoice = name.parse()?;
            match (choice, index) {
                (DeviceChoice::Cpu, Some(_)) => Err(Error::invalid(
                    "devices",
                    format!("`{entry}`: the CPU is one device; repeat `cpu` for several replicas"),
                )),
                (_, None) => choice.device(),
                (_, Some(i)) => choice.device_at(i),
            }
        })
        .collect()
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DeviceChoice::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "device",
                    format!("`{s}`; expected one of cpu, vulkan, wgpu, cuda"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reports_answers_panics_and_silence() {
        let second = Duration::from_secs(5);
        assert_eq!(answer_within(second, || 4), Some(Ok(4)));
        let panicked = answer_within(second, || -> i32 { panic!("device lost") });
        assert_eq!(panicked, Some(Err("device lost".to_string())));
        let silent = answer_within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
        });
        assert!(silent.is_none());
        probe(&Device::flex(), "cpu", second).unwrap();
    }

    #[test]
    fn device_lists_parse_and_bad_entries_are_named() {
        assert_eq!(parse_devices("cpu").unwrap().len(), 1);
        assert_eq!(parse_devices("cpu, cpu").unwrap().len(), 2);
        for (bad, named) in [
            ("", "comma-separated"),
            ("cpu,", "comma-separated"),
            ("tpu", "`tpu`"),
            ("cpu:1", "`cpu:1`"),
            ("cuda:x", "`cuda:x`"),
        ] {
            let err = parse_devices(bad).unwrap_err().to_string();
            assert!(err.contains(named), "{bad}: {err}");
        }
        if !DeviceChoice::Cuda.compiled() {
            let err = parse_devices("cpu,cuda:1").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
