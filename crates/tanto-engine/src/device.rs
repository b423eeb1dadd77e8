//! The compute device of the candle-backed paths (safetensors text models, the
//! dequantized MLX path, candle's GGUF models, embeddings' candle encoders).
//! tanto's own kernels (native llama, the BERT encoder) are CPU code.
//!
//! With the `cuda` or `metal` cargo feature, the first GPU is used when one is
//! present; `TANTO_DEVICE=cpu` keeps everything on the CPU.

use candle_core::Device;

/// Devices this build was compiled for, in preference order.
pub fn built() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "metal") {
        v.push("metal");
    }
    v.push("cpu");
    v
}

fn forced_cpu() -> bool {
    std::env::var("TANTO_DEVICE").is_ok_and(|v| v.eq_ignore_ascii_case("cpu"))
}

/// The device candle-backed models load on: a GPU of a built feature when one
/// is present (and not disabled), else the CPU.
pub fn select() -> Device {
    if !forced_cpu() {
        #[cfg(feature = "cuda")]
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
        #[cfg(feature = "metal")]
        if let Ok(d) = Device::new_metal(0) {
            return d;
        }
    }
    Device::Cpu
}

/// The name of [`select`]'s device (`cpu`, `cuda`, `metal`).
pub fn selected_name() -> &'static str {
    match select() {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
