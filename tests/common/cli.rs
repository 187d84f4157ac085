//! Running the `darkmatter` binary from the tests: scratch directories,
//! a tiny training run, and helpers that read what a run wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_darkmatter"))
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("darkmatter-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A run small enough for a CPU driver: 16 x 16 images, 96 of them.
pub const TINY: &[&str] = &[
    "train",
    "--data",
    "synthetic",
    "--synthetic-images",
    "96",
    "--synthetic-size",
    "16",
    "--batch-size",
    "32",
    "--projector",
    "64-64",
    "--epochs",
    "2",
    "--warmup-epochs",
    "0",
    "--seed",
    "7",
];

pub fn run(args: &[&str]) -> Output {
    let out = bin().args(args).output().expect("the binary runs");
    assert!(
        out.status.success(),
        "darkmatter {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect()
}

/// The loss of every step record, in order.
pub fn step_losses(dir: &Path) -> Vec<f64> {
    records(dir)
        .into_iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["loss"].as_f64().expect("a step's loss"))
        .collect()
}

pub fn epochs(dir: &Path) -> Vec<serde_json::Value> {
    records(dir)
        .into_iter()
        .filter(|r| r["kind"] == "epoch")
        .collect()
}

/// Runs a command that must fail with exit code 2 and a one-line error
/// containing `needle`, writing nothing into `out`.
pub fn fails(args: &[&str], needle: &str) {
    let out = bin().args(args).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    assert!(
        errors[0].contains(needle),
        "{args:?}: expected '{needle}' in {stderr}"
    );
}

/// [`TINY`] with some flags replaced or added: `extra` is flag-value pairs
/// (or lone flags such as `--overwrite`).
pub fn tiny(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut i = 0;
    while i < TINY.len() {
        let (flag, value) = (TINY[i], TINY.get(i + 1));
        if flag.starts_with("--") && extra.contains(&flag) {
            i += 2;
            continue;
        }
        args.push(flag.to_string());
        if flag.starts_with("--")
            && let Some(v) = value
        {
            args.push(v.to_string());
            i += 1;
        }
        i += 1;
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A checkpoint's tensors (name, dtype, shape, bytes) and metadata.
pub type Contents = (
    Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    std::collections::HashMap<String, String>,
);

/// Rewrites `dir`'s checkpoint through `edit`.
pub fn edit_checkpoint(dir: &Path, edit: impl FnOnce(&mut Contents)) {
    use safetensors::SafeTensors;
    let path = dir.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .names()
        .into_iter()
        .map(|n| {
            let t = file.tensor(n).unwrap();
            (
                n.to_string(),
                t.dtype(),
                t.shape().to_vec(),
                t.data().to_vec(),
            )
        })
        .collect();
    let mut contents = (tensors, meta);
    edit(&mut contents);
    let (tensors, meta) = contents;
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            let v = safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap();
            (n.clone(), v)
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

/// Writes an MNIST-style directory: `n` images of `rows` x `cols` per
/// split (the test split's size may differ), raw idx files.
pub fn idx_dir(
    name: &str,
    train: (usize, usize),
    test: (usize, usize),
    n: usize,
) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, (rows, cols)) in [("train", train), ("t10k", test)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n, rows, cols] {
            images.extend((d as u32).to_be_bytes());
        }
        images.extend((0..n * rows * cols).map(|i| (i * 37 % 251) as u8));
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
    dir
}
