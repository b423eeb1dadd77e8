//! The probe reports runtime compatibility from tanto-core's registry; this test
//! keeps that table and the engine's real loaders in lock-step.

use std::collections::BTreeSet;

use tanto_core::registry;

#[test]
fn core_registry_matches_engine_loaders() {
    let (gguf, safetensors) = tanto_engine::supported_architectures();
    let set = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        set(registry::GGUF_TEXT_ARCHITECTURES),
        set(gguf),
        "tanto-core GGUF registry and tanto-engine GGUF loaders disagree"
    );
    assert_eq!(
        set(registry::SAFETENSORS_TEXT_MODEL_TYPES),
        set(safetensors),
        "tanto-core safetensors registry and tanto-engine loaders disagree"
    );
}
