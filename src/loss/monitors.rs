//! Collapse monitors, computed on demand (each reads back to the CPU, so call
//! them every few hundred steps, not inside a step).
//!
//! - [`normalized_std`]: the per-dimension standard deviation of the
//!   L2-normalised embeddings. A healthy batch of D-dimensional embeddings
//!   sits near 1/sqrt(D) in every dimension; a collapsed one goes to 0.
//! - [`effective_rank`]: exp of the entropy of the normalised singular values
//!   (Roy & Vetterli 2007, as RankMe uses it): between 1 (every embedding on
//!   one line) and min(N, D) (all directions used equally).

use crate::error::{Error, Result};
use crate::kernels::matmul as mm;
use crate::tensor::Tensor;

/// Mean and minimum over dimensions of the per-dimension std.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CollapseStats {
    pub mean_std: f64,
    pub min_std: f64,
}

fn dims(op: &'static str, z: &Tensor) -> Result<(usize, usize)> {
    match *z.shape() {
        [n, d] if n >= 2 && d >= 1 => Ok((n, d)),
        _ => Err(Error::shape(
            op,
            &[z.shape()],
            "expected embeddings [batch >= 2, dim >= 1]",
        )),
    }
}

/// The per-dimension std (unbiased, over the batch) of the rows of `z`
/// after L2 normalisation.
pub fn normalized_std(z: &Tensor) -> Result<CollapseStats> {
    let (n, d) = dims("normalized_std", z)?;
    let data = z.to_vec()?;
    let mut u: Vec<f64> = data.iter().map(|&v| v as f64).collect();
    for row in u.chunks_mut(d) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let mut stds = Vec::with_capacity(d);
    for j in 0..d {
        let mean = (0..n).map(|i| u[i * d + j]).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| (u[i * d + j] - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        stds.push(var.sqrt());
    }
    Ok(CollapseStats {
        mean_std: stds.iter().sum::<f64>() / d as f64,
        min_std: stds.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

/// The effective rank of the embeddings `z` (`[N, D]`, used as they are,
/// not centred). The singular values come from the eigenvalues of the
/// smaller Gram matrix (ZᵀZ or ZZᵀ, built on the device), decomposed on the
/// CPU in f64 by the cyclic Jacobi method: O(min(N, D)³) per sweep.
pub fn effective_rank(z: &Tensor) -> Result<f64> {
    let (n, d) = dims("effective_rank", z)?;
    let (gram, size) = if d <= n {
        (mm::matmul(z, z, true, false)?, d)
    } else {
        (mm::matmul(z, z, false, true)?, n)
    };
    let gram: Vec<f64> = gram.to_vec()?.iter().map(|&v| v as f64).collect();
    let singular: Vec<f64> = symmetric_eigenvalues(gram, size)
        .into_iter()
        .map(|l| l.max(0.0).sqrt())
        .collect();
    let total: f64 = singular.iter().sum();
    if total <= 0.0 {
        return Ok(0.0);
    }
    let entropy: f64 = singular
        .iter()
        .map(|s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    Ok(entropy.exp())
}

/// Eigenvalues of the symmetric `n x n` matrix `a` (row-major), by cyclic
/// Jacobi rotations: each rotation zeroes one off-diagonal pair; sweeps
/// repeat until the off-diagonal mass is negligible.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let total: f64 = a.iter().map(|v| v * v).sum();
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= 1e-24 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                // The rotation angle that zeroes a[p][q].
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}
