//! Probe phase 7, runtime: can this build run the model at all? Asks the
//! registry's [`backend_for`](crate::registry::backend_for) for the model's own
//! modality and [`check_arch`](crate::registry::check_arch) for its architecture,
//! the same two questions the policy's backend and runtime gates ask.

use super::{Probe, Runtime};
use crate::registry::{self, Modality};

pub(crate) fn compat(p: &Probe, modality: Modality) -> Runtime {
    let no = |reason: String| Runtime {
        compatible: false,
        backend: None,
        reason: Some(reason),
    };
    if !p.health.healthy {
        return no(p.health.reason.clone().unwrap_or_default());
    }
    let backend = match registry::backend_for(p.format, p.kind, modality) {
        Ok(b) => b,
        Err(e) => return no(e.reason.to_string()),
    };
    if p.format == registry::Format::MlxSafetensors {
        match &p.mlx {
            None => return no("the MLX quantization block could not be read".into()),
            Some(q) => {
                if let Some(why) = &q.unsupported {
                    return no(why.clone());
                }
            }
        }
    }
    let arch = p.config_model_type.clone().unwrap_or_default();
    match registry::check_arch(backend, &arch) {
        Ok(()) => Runtime {
            compatible: true,
            backend: Some(backend),
            reason: None,
        },
        Err(reason) => no(reason),
    }
}
