//! Checkpoints as safetensors: every parameter and buffer under its PyTorch
//! name (f32; `num_batches_tracked` as i64, as PyTorch stores it), and the
//! architecture of each part in the metadata, so a file rebuilds its modules.
//! A file is written next to its destination and renamed into place, so a
//! crash never leaves half a checkpoint; a tensor holding a NaN or an
//! infinity is refused when saving and when loading.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{Arch, Entry, Module};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, batch_copy};
use crate::tensor::Tensor;

/// The metadata key holding the parts' prefixes and architectures (JSON).
const PARTS_KEY: &str = "darkmatter.parts";

/// One part of a checkpoint as its metadata describes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartInfo {
    pub prefix: String,
    pub arch: Arch,
}

fn fail(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The state of every part, named `prefix.name`.
fn entries<'a>(parts: &[(&str, &'a dyn Module)]) -> Vec<(String, Entry<'a>)> {
    let mut all = Vec::new();
    for (prefix, module) in parts {
        module.visit(prefix, &mut all);
    }
    all
}

/// Writes `parts` (a prefix such as "encoder" and a module each) to `path`.
pub fn save(path: &Path, parts: &[(&str, &dyn Module)]) -> Result<()> {
    save_with(path, parts, &[], &[])
}

/// Like [`save`], with extra named tensors (optimiser state, say) and extra
/// string metadata (the training configuration, the input preprocessing).
pub fn save_with(
    path: &Path,
    parts: &[(&str, &dyn Module)],
    extras: &[(String, Tensor)],
    metadata: &[(String, String)],
) -> Result<()> {
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, entry) in entries(parts) {
        data.push(match entry {
            Entry::Param(p) => {
                let t = &p.tensor;
                let bytes = bytemuck::cast_slice(&finite_values(path, &name, t)?).to_vec();
                (name, Dtype::F32, t.shape().to_vec(), bytes)
            }
            Entry::Buffer(t) => {
                let bytes = bytemuck::cast_slice(&finite_values(path, &name, t)?).to_vec();
                (name, Dtype::F32, t.shape().to_vec(), bytes)
            }
            Entry::Counter(c) => (name, Dtype::I64, vec![], c.get().to_le_bytes().to_vec()),
        });
    }
    for (name, t) in extras {
        let bytes = bytemuck::cast_slice(&finite_values(path, name, t)?).to_vec();
        data.push((name.clone(), Dtype::F32, t.shape().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| fail(path, format!("tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: Vec<PartInfo> = parts
        .iter()
        .map(|(prefix, m)| PartInfo {
            prefix: prefix.to_string(),
            arch: m.arch(),
        })
        .collect();
    let mut info: HashMap<String, String> = metadata.iter().cloned().collect();
    info.insert("format".to_string(), "pt".to_string());
    info.insert(
        PARTS_KEY.to_string(),
        serde_json::to_string(&meta).map_err(|e| fail(path, e))?,
    );
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| fail(path, e))?;
    crate::files::write_atomic(path, &bytes).map_err(|e| fail(path, e))
}

/// Little-endian f32 `data` of tensor `name`, refused if any value is not
/// finite.
fn finite_bytes(path: &Path, name: &str, data: &[u8]) -> Result<()> {
    let bad = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .enumerate()
        .find(|(_, v)| !v.is_finite());
    match bad {
        Some((index, value)) => Err(Error::NonFinite {
            path: path.display().to_string(),
            tensor: name.to_string(),
            index,
            value,
        }),
        None => Ok(()),
    }
}

/// The values of `t`, refused if any is not finite: a checkpoint with a NaN
/// would load and evaluate to plausible-looking nonsense.
fn finite_values(path: &Path, name: &str, t: &Tensor) -> Result<Vec<f32>> {
    let values = t.to_vec()?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            path: path.display().to_string(),
            tensor: name.to_string(),
            index: i,
            value: values[i],
        });
    }
    Ok(values)
}

/// The string metadata of a checkpoint.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = read(path)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        fail(
            path,
            format!("not a valid safetensors file (truncated?): {e}"),
        )
    })?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// Every f32 tensor of the checkpoint whose name starts with `prefix`,
/// uploaded to `gpu`, in file order.
pub fn load_tensors(gpu: &Gpu, path: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let mut out = Vec::new();
    let mut names: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    for name in names {
        let view = file.tensor(&name).map_err(|e| fail(path, e))?;
        if view.dtype() != Dtype::F32 {
            return Err(fail(
                path,
                format!("tensor '{name}' is {:?}, expected f32", view.dtype()),
            ));
        }
        finite_bytes(path, &name, view.data())?;
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.push((name, Tensor::from_slice(gpu, &values, view.shape())?));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| fail(path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        fail(
            path,
            format!("not a valid safetensors file (truncated?): {e}"),
        )
    })
}

/// The prefix and architecture of every part stored in `path`.
pub fn read_parts(path: &Path) -> Result<Vec<PartInfo>> {
    let json = read_metadata(path)?.remove(PARTS_KEY).ok_or_else(|| {
        fail(
            path,
            format!("no '{PARTS_KEY}' metadata: not a darkmatter checkpoint"),
        )
    })?;
    serde_json::from_str(&json).map_err(|e| fail(path, e))
}

/// Rebuilds every part stored in `path`, with its saved state.
pub fn load(gpu: &Gpu, path: &Path) -> Result<Vec<(String, Box<dyn Module>)>> {
    let bytes = read(path)?;
    let meta = read_parts(path)?;
    let modules = meta
        .into_iter()
        .map(|p| Ok((p.prefix, p.arch.build(gpu, 0)?)))
        .collect::<Result<Vec<_>>>()?;
    let parts: Vec<(&str, &dyn Module)> = modules
        .iter()
        .map(|(p, m)| (p.as_str(), m.as_ref()))
        .collect();
    fill(path, &parse(path, &bytes)?, &parts)?;
    Ok(modules)
}

/// Overwrites the state of existing modules with the tensors in `path`.
/// Every tensor must be present with the module's shape; tensors the
/// modules do not have are ignored.
pub fn load_into(path: &Path, parts: &[(&str, &dyn Module)]) -> Result<()> {
    let bytes = read(path)?;
    fill(path, &parse(path, &bytes)?, parts)
}

fn fill(path: &Path, file: &SafeTensors<'_>, parts: &[(&str, &dyn Module)]) -> Result<()> {
    // Check everything first, so a bad file leaves the modules untouched.
    let mut checked = Vec::new();
    for (name, entry) in entries(parts) {
        let (dtype, shape, label) = match &entry {
            Entry::Param(p) => (Dtype::F32, p.tensor.shape().to_vec(), "f32"),
            Entry::Buffer(t) => (Dtype::F32, t.shape().to_vec(), "f32"),
            Entry::Counter(_) => (Dtype::I64, vec![], "i64"),
        };
        let mismatch = |found: Option<String>| Error::CheckpointTensor {
            path: path.display().to_string(),
            tensor: name.clone(),
            dtype: label,
            expected: shape.clone(),
            found,
        };
        let view = file.tensor(&name).map_err(|_| mismatch(None))?;
        if view.dtype() != dtype || view.shape() != shape.as_slice() {
            let found = format!("{:?} {:?}", view.dtype(), view.shape());
            return Err(mismatch(Some(found.to_lowercase())));
        }
        if dtype == Dtype::F32 {
            finite_bytes(path, &name, view.data())?;
        }
        checked.push((entry, view.data()));
    }
    for (entry, data) in checked {
        match entry {
            Entry::Param(p) => overwrite(&p.tensor, data)?,
            Entry::Buffer(t) => overwrite(t, data)?,
            Entry::Counter(c) => {
                let raw: [u8; 8] = data.try_into().map_err(|_| fail(path, "bad i64"))?;
                c.set(i64::from_le_bytes(raw));
            }
        }
    }
    Ok(())
}

/// Replaces `dst`'s contents in stream order: work already recorded that
/// reads `dst` still sees the old values.
fn overwrite(dst: &Tensor, data: &[u8]) -> Result<()> {
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let src = Tensor::from_slice(dst.gpu(), &values, dst.shape())?;
    if src.numel() > 0 {
        batch_copy(dst.gpu(), src.buffer(), dst.buffer(), src.bytes());
    }
    Ok(())
}
