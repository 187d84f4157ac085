//! A 2-D PCA projection of features, for scatter plots.

use crate::error::{Error, Result};

/// Subspace iterations at most; each costs two passes over the data.
const MAX_ITERATIONS: usize = 500;

/// Projects each of the `n` rows of the row-major `[n, d]` matrix `feats`
/// onto its top two principal components (the centred data times the two
/// leading eigenvectors of the covariance). Each component's sign is chosen
/// so that its largest loading is positive, which makes the plot the same
/// from run to run.
///
/// Subspace iteration in f64: V ← orthonormalise(Xᵀ X V) on two vectors at
/// once, without forming the `[d, d]` covariance, so wide features cost
/// O(n d) per iteration rather than O(n d²) once.
pub fn pca_2d(feats: &[f32], n: usize, d: usize) -> Result<Vec<[f32; 2]>> {
    if n == 0 || d == 0 || n.checked_mul(d) != Some(feats.len()) {
        return Err(Error::invalid(
            "pca_2d",
            format!(
                "{} values do not form a non-empty [{n}, {d}] matrix",
                feats.len()
            ),
        ));
    }
    let mut mean = vec![0f64; d];
    for row in feats.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let x: Vec<f64> = feats
        .chunks_exact(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m))
        .collect();

    // A fixed, generic start (not aligned with any axis).
    let mut v: [Vec<f64>; 2] = [
        (0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect(),
        (0..d).map(|i| (i as f64 * 1.414).sin()).collect(),
    ];
    orthonormalise(&mut v);
    for _ in 0..MAX_ITERATIONS {
        let mut next = [
            covariance_times(&x, d, &v[0]),
            covariance_times(&x, d, &v[1]),
        ];
        orthonormalise(&mut next);
        // Converged when the new basis spans the old one.
        let change = (0..2)
            .map(|c| 1.0 - dot(&next[c], &v[0]).powi(2) - dot(&next[c], &v[1]).powi(2))
            .fold(0f64, f64::max);
        v = next;
        if change < 1e-12 {
            break;
        }
    }
    // The basis spans the top-2 subspace; rotate it onto the eigenvectors
    // with the 2 x 2 eigenproblem of the covariance restricted to it.
    let cv = [
        covariance_times(&x, d, &v[0]),
        covariance_times(&x, d, &v[1]),
    ];
    let (a, b, c) = (dot(&v[0], &cv[0]), dot(&v[0], &cv[1]), dot(&v[1], &cv[1]));
    let theta = 0.5 * (2.0 * b).atan2(a - c);
    let (s, co) = theta.sin_cos();
    let mut pcs: [Vec<f64>; 2] = [
        v[0].iter()
            .zip(&v[1])
            .map(|(p, q)| co * p + s * q)
            .collect(),
        v[0].iter()
            .zip(&v[1])
            .map(|(p, q)| -s * p + co * q)
            .collect(),
    ];
    for pc in &mut pcs {
        let largest = pc
            .iter()
            .copied()
            .fold(0f64, |m, w| if w.abs() > m.abs() { w } else { m });
        if largest < 0.0 {
            pc.iter_mut().for_each(|w| *w = -*w);
        }
    }
    Ok(x.chunks_exact(d)
        .map(|row| [dot(row, &pcs[0]) as f32, dot(row, &pcs[1]) as f32])
        .collect())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Xᵀ (X v) for the row-major `[n, d]` matrix `x` (the covariance up to a
/// factor 1 / n, which the normalisation removes).
fn covariance_times(x: &[f64], d: usize, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0f64; d];
    for row in x.chunks_exact(d) {
        let p = dot(row, v);
        for (o, r) in out.iter_mut().zip(row) {
            *o += p * r;
        }
    }
    out
}

/// Gram-Schmidt on two vectors. A vector that vanishes (the data has rank
/// below two) is left at zero, so its coordinate is 0 for every point.
fn orthonormalise(v: &mut [Vec<f64>; 2]) {
    let norm = dot(&v[0], &v[0]).sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    v[0].iter_mut().for_each(|x| *x *= scale);
    let p = dot(&v[0], &v[1]);
    let (first, second) = v.split_at_mut(1);
    for (y, x) in second[0].iter_mut().zip(&first[0]) {
        *y -= p * x;
    }
    let norm = dot(&v[1], &v[1]).sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    v[1].iter_mut().for_each(|x| *x *= scale);
}
