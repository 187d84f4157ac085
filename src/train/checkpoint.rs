//! The training checkpoint: encoder, projector and optimiser state under
//! PyTorch names in one safetensors file, with the configuration, the
//! position in the run and the input preprocessing in its metadata. Written
//! to a temporary file and renamed, so a crash never loses the last one.

use std::path::{Path, PathBuf};

use super::config::TrainConfig;
use crate::augment::Normalize;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{self, Module};
use crate::optim::Optimizer;

/// The file name inside the output directory.
pub const FILE: &str = "checkpoint.safetensors";

pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Creates `dir` if needed and checks that files can be written in it.
pub fn prepare_out_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io(dir, format!("cannot create the output directory: {e}")))?;
    let probe = dir.join(".darkmatter-write-test");
    std::fs::write(&probe, b"")
        .map_err(|e| io(dir, format!("the output directory is not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| io(&probe, e))
}

/// What a checkpoint holds.
pub struct State<'a> {
    pub dir: &'a Path,
    pub config: &'a TrainConfig,
    pub encoder: &'a dyn Module,
    pub projector: &'a dyn Module,
    pub optimizer: &'a Optimizer,
    /// Epochs completed and steps taken.
    pub epoch: u32,
    pub step: u64,
    pub normalize: Normalize,
}

pub fn save(s: State<'_>) -> Result<PathBuf> {
    let path = s.dir.join(FILE);
    let channels = match s.encoder.arch() {
        nn::Arch::ConvNet { in_channels } | nn::Arch::ResNet18 { in_channels } => in_channels,
        nn::Arch::Projector { .. } => 0,
    };
    let metadata = vec![
        ("darkmatter.config".to_string(), json(s.config)),
        ("darkmatter.epoch".to_string(), s.epoch.to_string()),
        ("darkmatter.step".to_string(), s.step.to_string()),
        (
            "darkmatter.optimizer".to_string(),
            s.optimizer.rule().name().to_string(),
        ),
        (
            "preprocessing".to_string(),
            "pixels scaled to [0, 1], then (x - normalize_mean) / normalize_std per channel; NCHW"
                .to_string(),
        ),
        (
            "normalize_mean".to_string(),
            json(&s.normalize.mean[..channels.clamp(1, 3)].to_vec()),
        ),
        (
            "normalize_std".to_string(),
            json(&s.normalize.std[..channels.clamp(1, 3)].to_vec()),
        ),
    ];
    let extras: Vec<_> = s
        .optimizer
        .state_tensors()
        .into_iter()
        .map(|(n, t)| (format!("optimizer.{n}"), t))
        .collect();
    nn::save_with(
        &path,
        &[("encoder", s.encoder), ("projector", s.projector)],
        &extras,
        &metadata,
    )?;
    Ok(path)
}

/// Metadata values are JSON; these types always serialise.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A checkpoint read back.
pub struct Loaded {
    pub config: TrainConfig,
    pub encoder: Box<dyn Module>,
    pub projector: Box<dyn Module>,
    pub optimizer_state: Vec<(String, crate::tensor::Tensor)>,
    pub epoch: u32,
    pub step: u64,
    pub normalize: Normalize,
}

fn meta<T: serde::de::DeserializeOwned>(
    path: &Path,
    m: &std::collections::HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let raw = m.get(key).ok_or_else(|| {
        io(
            path,
            format!("no '{key}' in the metadata: not a training checkpoint"),
        )
    })?;
    serde_json::from_str(raw).map_err(|e| io(path, format!("metadata '{key}': {e}")))
}

/// Reads `dir/checkpoint.safetensors` (or `dir` itself if it is a file).
pub fn load(gpu: &Gpu, dir: &Path) -> Result<Loaded> {
    let path = if dir.is_dir() {
        dir.join(FILE)
    } else {
        dir.to_path_buf()
    };
    if !path.exists() {
        return Err(io(&path, "no checkpoint here"));
    }
    let m = nn::read_metadata(&path)?;
    let config: TrainConfig = meta(&path, &m, "darkmatter.config")?;
    let mut parts = nn::load(gpu, &path)?;
    let take = |parts: &mut Vec<(String, Box<dyn Module>)>, name: &str| {
        let i = parts
            .iter()
            .position(|(p, _)| p == name)
            .ok_or_else(|| io(&path, format!("no '{name}' in the checkpoint")))?;
        Ok::<_, Error>(parts.remove(i).1)
    };
    let encoder = take(&mut parts, "encoder")?;
    let projector = take(&mut parts, "projector")?;
    let optimizer_state = nn::load_tensors(gpu, &path, "optimizer.")?
        .into_iter()
        .map(|(n, t)| (n.trim_start_matches("optimizer.").to_string(), t))
        .collect();
    let mean: Vec<f32> = meta(&path, &m, "normalize_mean")?;
    let std: Vec<f32> = meta(&path, &m, "normalize_std")?;
    let pad =
        |v: &[f32]| -> [f32; 3] { [v[0], *v.get(1).unwrap_or(&v[0]), *v.get(2).unwrap_or(&v[0])] };
    if mean.is_empty() || std.is_empty() {
        return Err(io(&path, "empty normalisation in the metadata"));
    }
    Ok(Loaded {
        config,
        encoder,
        projector,
        optimizer_state,
        epoch: meta(&path, &m, "darkmatter.epoch")?,
        step: meta(&path, &m, "darkmatter.step")?,
        normalize: Normalize {
            mean: pad(&mean),
            std: pad(&std),
        },
    })
}
