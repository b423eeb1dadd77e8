//! `tanto --version [--json]`

use serde_json::{json, Value};
use tanto_core::{host, registry};

use crate::output;

/// The `system` object of `version` and `list` (mlx-knife's
/// `memory_total_bytes`, plus what tanto knows about the host).
pub fn system_json() -> Value {
    let mem = host::detect();
    json!({
        "memory_total_bytes": mem.total_bytes,
        "memory_available_bytes": mem.available_bytes,
        "memory_source": mem.source,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

pub fn run(json: bool) -> i32 {
    let v = env!("CARGO_PKG_VERSION");
    if json {
        output::print_json(&output::envelope_ok(
            "version",
            json!({
                "cli_version": v,
                "json_api_spec_version": output::JSON_API_VERSION,
                "system": system_json(),
                "engines": {
                    "gguf-text": registry::GGUF_TEXT_ARCHITECTURES,
                    "safetensors-text": registry::SAFETENSORS_TEXT_MODEL_TYPES,
                    "embeddings": registry::EMBEDDING_MODEL_TYPES,
                    "whisper": registry::AUDIO_MODEL_TYPES,
                    "vision": registry::VISION_MODEL_TYPES,
                },
                // Devices this build can use (cargo features), the one candle
                // paths pick on this host, and tanto's own CPU kernels.
                "devices": {
                    "built": tanto_engine::device::built(),
                    "selected": tanto_engine::device::selected_name(),
                    "cpu_kernels": tanto_engine::kernels::kernel_name(),
                },
                "mlx": {
                    "bits": tanto_core::probe::mlx::MLX_BITS,
                    "group_sizes": tanto_core::probe::mlx::MLX_GROUP_SIZES,
                    "native_bits": tanto_core::probe::mlx::NATIVE_BITS,
                    "native_model_types": tanto_core::probe::mlx::NATIVE_MODEL_TYPES,
                },
            }),
        ));
    } else {
        output::outln(&format!("tanto {v}"));
    }
    output::EXIT_OK
}
