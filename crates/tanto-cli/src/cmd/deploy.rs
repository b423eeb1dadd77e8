//! `tanto deploy vllm MODEL [--emit compose|k8s]`: a vLLM deployment for a
//! cached model that mounts the same hub cache read-only, pinned to the
//! cached snapshot, offline; then `tanto serve --upstream` routes to it. The
//! probe says up front when vLLM cannot load the format.

use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::probe;
use tanto_core::registry::{Format, ModelKind};
use tanto_core::resolve::{self, Location, Stores};

use crate::output::{self, errln, CmdResult};

#[derive(clap::Subcommand, Debug)]
pub enum Target {
    /// A vLLM OpenAI server for a cached model
    Vllm(VllmArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// A docker compose file
    Compose,
    /// A Kubernetes Deployment and Service
    K8s,
}

#[derive(clap::Args, Debug)]
pub struct VllmArgs {
    /// A model in the hub cache (org/name, a fuzzy name, name@rev)
    pub model: String,
    /// What to write to standard output
    #[arg(long, value_enum, default_value_t = Emit::Compose)]
    pub emit: Emit,
    /// Host port for vLLM (compose) / service port (k8s)
    #[arg(long, default_value_t = 8001)]
    pub port: u16,
    /// vLLM container image
    #[arg(long, default_value = "vllm/vllm-openai:latest")]
    pub image: String,
    /// Print the JSON envelope (manifest and warnings) instead of the manifest
    #[arg(long)]
    pub json: bool,
}

/// What vLLM does with this probe's model: `Err` when it cannot load it,
/// `Ok(warnings, extra vLLM arguments)` otherwise.
fn vllm_fit(p: &probe::Probe) -> Result<(Vec<String>, Vec<String>), String> {
    let mut warn = Vec::new();
    let mut args = Vec::new();
    match p.format {
        Format::Safetensors | Format::PytorchBin => {}
        Format::MlxSafetensors => {
            return Err("MLX-quantized weights (mlx-community) are an Apple format that vLLM cannot load; deploy the unquantized or a GPTQ/AWQ repo".into())
        }
        Format::Gguf => warn.push(
            "vLLM's GGUF loader is experimental (single-file GGUF only, and it needs the original repo's tokenizer); prefer the safetensors repo".into(),
        ),
        Format::Ctranslate2 => {
            return Err("CTranslate2 folders (faster-whisper) are not a format vLLM loads; deploy the openai/whisper-* safetensors repo".into())
        }
        Format::Onnx | Format::Unknown => return Err("vLLM loads safetensors (or GGUF) weights; this model has neither".into()),
    }
    match p.kind {
        ModelKind::Embedding => args.extend(["--task".to_string(), "embed".to_string()]),
        ModelKind::Audio => warn.push("vLLM serves Whisper under /v1/audio/transcriptions only for the models its version supports; check the vLLM docs".into()),
        ModelKind::Chat | ModelKind::Base => {}
    }
    if !p.health.healthy {
        warn.push(format!(
            "the cached copy is not healthy ({}); vLLM runs offline and will fail on it",
            p.health.reason.clone().unwrap_or_default()
        ));
    }
    Ok((warn, args))
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

pub fn run(t: Target) -> CmdResult {
    let Target::Vllm(a) = t;
    let stores = Stores::from_env();
    let r = resolve::resolve(&a.model, &stores)?;
    let (repo_id, commit) = match &r.location {
        Location::Cache {
            repo,
            snapshot: Some(s),
            ..
        } => (repo.repo_id.clone(), s.commit.clone()),
        _ => {
            return Err(TantoError::new(
                ErrorType::ValidationError,
                format!("'{}' is not a model in the hub cache", r.display_name),
            )
            .with_hint("vLLM reads the hub cache: tanto pull ORG/NAME first, then deploy it")
            .into())
        }
    };
    let p = probe::probe_resolved(&r);
    let (warnings, extra) = vllm_fit(&p)
        .map_err(|m| TantoError::new(ErrorType::RuntimeIncompatible, format!("{repo_id}: {m}")))?;
    let cache = std::fs::canonicalize(&stores.cache).unwrap_or(stores.cache.clone());
    let mut cmd = vec![
        "--model".to_string(),
        repo_id.clone(),
        "--revision".into(),
        commit.clone(),
        "--served-model-name".into(),
        repo_id.clone(),
        "--port".into(),
        "8000".into(),
    ];
    cmd.extend(extra);
    let cmd_yaml = format!(
        "[{}]",
        cmd.iter()
            .map(|c| yaml_str(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let name = format!(
        "vllm-{}",
        repo_id
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    );
    let name: String = name
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string();
    let manifest = match a.emit {
        Emit::Compose => format!(
            "# vLLM for {repo_id} at {commit}, from the hub cache at {cache} (read-only, offline).\n\
             # Route tanto to it: tanto serve --upstream http://127.0.0.1:{port}\n\
             services:\n  {name}:\n    image: {image}\n    command: {cmd_yaml}\n    environment:\n      HF_HUB_OFFLINE: \"1\"\n      HF_HUB_CACHE: /hf/hub\n    volumes:\n      - {vol}:/hf/hub:ro\n    ports:\n      - \"127.0.0.1:{port}:8000\"\n    ipc: host\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              count: all\n              capabilities: [gpu]\n",
            cache = cache.display(),
            port = a.port,
            image = a.image,
            vol = yaml_str(&cache.display().to_string()),
        ),
        Emit::K8s => format!(
            "# vLLM for {repo_id} at {commit}; the node's hub cache at {cache} mounted read-only, offline.\n\
             # Route tanto to it: tanto serve --upstream http://{name}:{port}\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: vllm\n          image: {image}\n          args: {cmd_yaml}\n          env:\n            - name: HF_HUB_OFFLINE\n              value: \"1\"\n            - name: HF_HUB_CACHE\n              value: /hf/hub\n          ports:\n            - containerPort: 8000\n          resources:\n            limits:\n              nvidia.com/gpu: 1\n          volumeMounts:\n            - name: hf-cache\n              mountPath: /hf/hub\n              readOnly: true\n      volumes:\n        - name: hf-cache\n          hostPath:\n            path: {vol}\n            type: Directory\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n    - port: {port}\n      targetPort: 8000\n",
            cache = cache.display(),
            port = a.port,
            image = a.image,
            vol = yaml_str(&cache.display().to_string()),
        ),
    };
    if a.json {
        output::print_json(&output::envelope_ok(
            "deploy",
            json!({
                "target": "vllm",
                "emit": match a.emit { Emit::Compose => "compose", Emit::K8s => "k8s" },
                "model": repo_id,
                "commit_hash": commit,
                "cache": cache,
                "warnings": warnings,
                "manifest": manifest,
                "route": format!("tanto serve --upstream http://127.0.0.1:{}", a.port),
            }),
        ));
    } else {
        for w in &warnings {
            errln(&format!("tanto deploy: warning: {w}"));
        }
        print!("{manifest}");
    }
    Ok(output::EXIT_OK)
}
