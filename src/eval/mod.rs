//! Evaluating a frozen representation: weighted kNN, a linear classification
//! probe, a ridge regression probe for continuous attributes, and a 2-D PCA
//! projection for plots.
//!
//! Every function takes feature matrices `[rows, dim]` (the encoder's output
//! on a split) and labels or targets on the CPU, and reports numbers; none of
//! them changes the encoder. The collapse monitors live with the losses.

mod knn;
mod pca;
mod probe;
mod regression;

pub use knn::{KNN_TEMPERATURE, knn};
pub use pca::pca_2d;
pub use probe::{ProbeConfig, ProbeResult, linear_probe};
pub use regression::{LOCALISATION_TARGETS, RIDGE, Ridge, localisation_targets, regression_probe};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `(rows, dim)` of a feature matrix, which must be non-empty.
fn feature_dims(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [rows, dim] if rows > 0 && dim > 0 => Ok((rows, dim)),
        _ => Err(Error::shape(
            op,
            &[t.shape()],
            "features must be a non-empty [rows, dim] matrix",
        )),
    }
}

/// Checks that a train and a test feature matrix share their width and that
/// each has one label (or target) per row; returns `(train rows, test rows,
/// dim)`.
fn check_splits(
    op: &'static str,
    train: &Tensor,
    train_len: usize,
    test: &Tensor,
    test_len: usize,
) -> Result<(usize, usize, usize)> {
    let (n, d) = feature_dims(op, train)?;
    let (m, dt) = feature_dims(op, test)?;
    if d != dt {
        return Err(Error::shape(
            op,
            &[train.shape(), test.shape()],
            "train and test features have different widths",
        ));
    }
    for (split, rows, len) in [("train", n, train_len), ("test", m, test_len)] {
        if rows != len {
            return Err(Error::invalid(
                op,
                format!("{split} split has {rows} feature rows but {len} labels or targets"),
            ));
        }
    }
    Ok((n, m, d))
}

/// Labels must name one of `num_classes` classes.
fn check_labels(op: &'static str, labels: &[u32], num_classes: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(Error::invalid(op, "num_classes must be at least 1"));
    }
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(i) => Err(Error::invalid(
            op,
            format!(
                "label {} at index {i} is not below num_classes = {num_classes}",
                labels[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Per-feature mean and 1/std of a `[rows, dim]` matrix, in f64. Probes
/// standardise both splits with the train split's statistics, as the
/// standard protocol does; a constant feature keeps scale 1.
struct Standardizer {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

impl Standardizer {
    fn fit(x: &[f32], dim: usize) -> Standardizer {
        let rows = (x.len() / dim).max(1) as f64;
        let mut mean = vec![0f64; dim];
        for row in x.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows);
        let mut var = vec![0f64; dim];
        for row in x.chunks_exact(dim) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let inv_std = var
            .iter()
            .map(|&s| {
                let std = (s / rows).sqrt();
                if std > 1e-12 { 1.0 / std } else { 1.0 }
            })
            .collect();
        Standardizer { mean, inv_std }
    }

    /// `(x - mean) / std`, row by row.
    fn apply(&self, x: &[f32]) -> Vec<f64> {
        let dim = self.mean.len();
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(dim) {
            for ((&v, m), s) in row.iter().zip(&self.mean).zip(&self.inv_std) {
                out.push((v as f64 - m) * s);
            }
        }
        out
    }
}
