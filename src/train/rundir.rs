//! The output directory of a run: one owner at a time, and never another
//! run's files.
//!
//! A run holds an exclusive lock on `.darkmatter.lock` in its directory
//! for as long as it lives, so a second run into the same directory fails
//! at once, naming the first. A fresh run refuses a directory that already
//! holds a run unless asked to `--overwrite` it (which removes that run's
//! files first); `--resume` continues the run a directory holds.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::checkpoint::io;
use super::config::TrainConfig;
use crate::error::{Error, Result};

const LOCK: &str = ".darkmatter.lock";

/// The files a run writes into its directory.
pub const FILES: [&str; 9] = [
    "config.json",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "loss.png",
    "accuracy.png",
    "pca.png",
    "augmentations.png",
    "reconstructions.png",
    "rollout.png",
];

/// A run's directory, locked for this process until dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

/// Locks `dir` (created if needed) for this process, or says which
/// process holds it.
fn lock(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io(dir, format!("cannot create the output directory: {e}")))?;
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(dir, format!("the output directory is not writable: {e}")))?;
    if file.try_lock().is_err() {
        let mut owner = String::new();
        let _ = file.read_to_string(&mut owner);
        let owner = owner.trim();
        return Err(Error::invalid(
            "train",
            format!(
                "{} is in use by another darkmatter run ({}); wait for it to finish or choose another --out",
                dir.display(),
                if owner.is_empty() {
                    "its process is starting"
                } else {
                    owner
                }
            ),
        ));
    }
    let stamp = format!("pid {}", std::process::id());
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(stamp.as_bytes()))
        .map_err(|e| io(&path, e))?;
    Ok(file)
}

/// A description of the run `dir` holds, or `None` if it holds none.
fn existing_run(dir: &Path) -> Option<String> {
    if !FILES[..3].iter().any(|f| dir.join(f).exists()) {
        return None;
    }
    let described = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<TrainConfig>(&text).ok())
        .map(|c| format!("{} on {}, {} epochs", c.method(), c.data, c.epochs));
    Some(described.unwrap_or_else(|| "its files".to_string()))
}

impl RunDir {
    /// The directory of a fresh run: refused if it holds another run,
    /// unless `overwrite`, which removes that run's files first.
    pub fn fresh(dir: &Path, overwrite: bool) -> Result<RunDir> {
        if !overwrite && let Some(run) = existing_run(dir) {
            return Err(Error::invalid(
                "train",
                format!(
                    "{} already holds a run ({run}): --resume {} continues it, --overwrite starts afresh there, or choose another --out",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
        let lock = lock(dir)?;
        if overwrite {
            for f in FILES {
                match std::fs::remove_file(dir.join(f)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io(&dir.join(f), e));
                    }
                    _ => {}
                }
            }
        }
        Ok(RunDir {
            path: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory of a run to continue.
    pub fn existing(dir: &Path) -> Result<RunDir> {
        Ok(RunDir {
            path: dir.to_path_buf(),
            _lock: lock(dir)?,
        })
    }

    /// Fails, naming the owner, if another process holds `dir` now (a
    /// quick check before reading its files; the lock is not kept).
    pub fn ensure_free(dir: &Path) -> Result<()> {
        if dir.join(LOCK).exists() {
            drop(lock(dir)?);
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
