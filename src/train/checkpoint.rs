//! The training checkpoint: every part of the objective (encoder,
//! projector, predictor, EMA target, ...) and the optimiser state under
//! PyTorch names in one safetensors file, with the configuration, the
//! position in the run and the input preprocessing in its metadata. Written
//! to a temporary file and renamed, so a crash never loses the last one.

use std::path::{Path, PathBuf};

use super::config::TrainConfig;
use crate::augment::Normalize;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{self, Arch, Module};
use crate::objectives::Objective;
use crate::optim::Optimizer;

/// The file name inside the output directory.
pub const FILE: &str = "checkpoint.safetensors";

pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// What a checkpoint holds.
pub struct State<'a> {
    pub dir: &'a Path,
    pub config: &'a TrainConfig,
    pub objective: &'a dyn Objective,
    pub optimizer: &'a Optimizer,
    /// Epochs completed and steps taken.
    pub epoch: u32,
    pub step: u64,
    pub normalize: Normalize,
    /// The variant choices of the run (`Gpu::tuning`).
    pub kernels: Vec<(String, String)>,
    /// The training images' height and width.
    pub image_size: (usize, usize),
}

pub fn save(s: State<'_>) -> Result<PathBuf> {
    let path = s.dir.join(FILE);
    let parts = s.objective.parts();
    let channels = parts
        .iter()
        .find_map(|p| p.module.arch().in_channels())
        .unwrap_or(1);
    let metadata = vec![
        ("darkmatter.config".to_string(), json(s.config)),
        ("darkmatter.epoch".to_string(), s.epoch.to_string()),
        ("darkmatter.step".to_string(), s.step.to_string()),
        (
            "darkmatter.optimizer".to_string(),
            s.optimizer.rule().name().to_string(),
        ),
        // The kernel variants this run measured and used: a resumed run
        // takes the same ones, so it computes what this one would have.
        ("darkmatter.kernels".to_string(), json(&s.kernels)),
        ("darkmatter.image_size".to_string(), json(&s.image_size)),
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
    let modules: Vec<(&str, &dyn Module)> = parts.iter().map(|p| (p.name, p.module)).collect();
    nn::save_with(&path, &modules, &extras, &metadata)?;
    Ok(path)
}

/// Metadata values are JSON; these types always serialise.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A checkpoint read back.
pub struct Loaded {
    pub config: TrainConfig,
    /// The objective of the configuration, every part holding its saved state.
    pub objective: Box<dyn Objective>,
    /// The architecture of the saved encoder.
    pub encoder_arch: Arch,
    pub optimizer_state: Vec<(String, crate::tensor::Tensor)>,
    pub epoch: u32,
    pub step: u64,
    pub normalize: Normalize,
    /// The kernel variants the run used (empty in older checkpoints).
    pub kernels: Vec<(String, String)>,
    /// The training images' height and width (unknown in older checkpoints).
    pub image_size: Option<(usize, usize)>,
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

/// The file a checkpoint argument names: `dir/checkpoint.safetensors`, or
/// `dir` itself if it is a file.
pub fn file(dir: &Path) -> PathBuf {
    if dir.is_dir() {
        dir.join(FILE)
    } else {
        dir.to_path_buf()
    }
}

/// The configuration saved in a checkpoint, read without a device.
pub fn read_config(dir: &Path) -> Result<TrainConfig> {
    let path = file(dir);
    if !path.exists() {
        return Err(io(&path, "no checkpoint here"));
    }
    meta(&path, &nn::read_metadata(&path)?, "darkmatter.config")
}

/// Reads a checkpoint: builds the objective its configuration describes,
/// checks each part against the architecture saved for it, and loads every
/// part's state.
pub fn load(gpu: &Gpu, dir: &Path) -> Result<Loaded> {
    let path = file(dir);
    if !path.exists() {
        return Err(io(&path, "no checkpoint here"));
    }
    let m = nn::read_metadata(&path)?;
    let config: TrainConfig = meta(&path, &m, "darkmatter.config")?;
    let saved: Vec<nn::PartInfo> = nn::read_parts(&path)?;
    let arch_of = |name: &str| {
        saved
            .iter()
            .find(|p| p.prefix == name)
            .map(|p| p.arch.clone())
            .ok_or_else(|| io(&path, format!("no '{name}' in the checkpoint")))
    };
    let encoder_arch = arch_of("encoder")?;
    let objective = config.objective.build(gpu, &encoder_arch, 0)?;
    {
        let parts = objective.parts();
        for part in &parts {
            let arch = arch_of(part.name)?;
            if arch != part.module.arch() {
                return Err(io(
                    &path,
                    format!(
                        "'{}' is saved as {arch:?}, but its {} configuration builds {:?}",
                        part.name,
                        config.method(),
                        part.module.arch()
                    ),
                ));
            }
        }
        let modules: Vec<(&str, &dyn Module)> = parts.iter().map(|p| (p.name, p.module)).collect();
        nn::load_into(&path, &modules)?;
    }
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
        objective,
        encoder_arch,
        optimizer_state,
        epoch: meta(&path, &m, "darkmatter.epoch")?,
        step: meta(&path, &m, "darkmatter.step")?,
        kernels: match m.get("darkmatter.kernels") {
            Some(_) => meta(&path, &m, "darkmatter.kernels")?,
            None => Vec::new(),
        },
        image_size: match m.get("darkmatter.image_size") {
            Some(_) => Some(meta(&path, &m, "darkmatter.image_size")?),
            None => None,
        },
        normalize: Normalize {
            mean: pad(&mean),
            std: pad(&std),
        },
    })
}
