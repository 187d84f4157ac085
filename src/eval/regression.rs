//! The regression probe: ridge regression from standardised features to
//! continuous targets (where the object is, how large, how rotated),
//! reported as R² on the test split.

use super::{Standardizer, check_splits};
use crate::data::{Attributes, Shape};
use crate::error::{Error, Result};
use crate::kernels::{BinaryOp, elementwise as ew, matmul::matmul};
use crate::tensor::Tensor;

/// The ridge penalty relative to the diagonal of XᵀX (which is N for
/// standardised features): small enough not to bias a well-determined fit,
/// large enough to keep the solve stable when features are collinear, as
/// collapsed representations are.
pub const RIDGE: f64 = 1e-3;

/// The names of [`localisation_targets`]' columns, in order.
pub const LOCALISATION_TARGETS: [&str; 5] = ["x", "y", "scale", "rot_sin", "rot_cos"];

/// The synthetic dataset's continuous attributes as regression targets, one
/// vector per target ([`LOCALISATION_TARGETS`] names them): centre x and y,
/// scale, and the rotation as sin and cos of (angle × symmetry order). A
/// shape looks the same after a turn of 2π / order, so only that multiple of
/// the angle is visible in its pixels, and sin/cos makes it continuous
/// across the wrap-around. Shapes unchanged by every rotation (disc, ring)
/// have no visible rotation: both of their rotation targets are 0.
pub fn localisation_targets(attributes: &[Attributes]) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::with_capacity(attributes.len()); LOCALISATION_TARGETS.len()];
    for a in attributes {
        let order = Shape::ALL
            .get(a.class as usize)
            .and_then(|s| s.symmetry_order());
        let (sin, cos) = match order {
            Some(o) => (a.rotation * o as f32).sin_cos(),
            None => (0.0, 0.0),
        };
        for (column, v) in out.iter_mut().zip([a.x, a.y, a.scale, sin, cos]) {
            column.push(v);
        }
    }
    out
}

/// Fits ridge regressions from `train` `[N, D]` (standardised with the train
/// split's statistics) to each target in `train_targets` (one vector of N
/// values per target, with an intercept), and returns each target's R² on
/// the test split: 1 for a perfect prediction, 0 for predicting the mean,
/// negative for worse. XᵀX is accumulated on the GPU in row chunks; the
/// solve is a Cholesky factorisation in f64 on the CPU.
pub fn regression_probe(
    train: &Tensor,
    train_targets: &[Vec<f32>],
    test: &Tensor,
    test_targets: &[Vec<f32>],
) -> Result<Vec<f32>> {
    let op = "regression_probe";
    if train_targets.is_empty() || train_targets.len() != test_targets.len() {
        return Err(Error::invalid(
            op,
            format!(
                "needs the same, non-zero number of targets on both splits (got {} and {})",
                train_targets.len(),
                test_targets.len()
            ),
        ));
    }
    let len_of = |targets: &[Vec<f32>]| -> Result<usize> {
        let len = targets[0].len();
        match targets.iter().position(|t| t.len() != len) {
            Some(i) => Err(Error::invalid(
                op,
                format!(
                    "target {i} has {} values, target 0 has {len}",
                    targets[i].len()
                ),
            )),
            None => Ok(len),
        }
    };
    let (_, m, _) = check_splits(
        op,
        train,
        len_of(train_targets)?,
        test,
        len_of(test_targets)?,
    )?;
    train.same_gpu(test, op)?;
    let t = train_targets.len();

    let ridge = Ridge::fit(train, train_targets)?;
    let predicted = ridge.predict(&test.to_vec()?);
    let mut r2 = Vec::with_capacity(t);
    for (j, y) in test_targets.iter().enumerate() {
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let (mut ss_res, mut ss_tot) = (0f64, 0f64);
        for (pred, &truth) in predicted[j].iter().zip(y) {
            ss_res += (truth as f64 - pred).powi(2);
            ss_tot += (truth as f64 - mean).powi(2);
        }
        if ss_tot == 0.0 {
            return Err(Error::invalid(
                op,
                format!("target {j} is constant on the test split: R² is undefined"),
            ));
        }
        r2.push((1.0 - ss_res / ss_tot) as f32);
    }
    Ok(r2)
}

/// A ridge regression fitted to standardised features: what
/// [`regression_probe`] scores, kept to apply to other features (a video
/// predictor's predicted maps).
pub struct Ridge {
    scaler: Standardizer,
    /// Per target: the intercept (the targets' mean) and the weights.
    intercepts: Vec<f64>,
    weights: Vec<Vec<f64>>,
}

impl Ridge {
    /// Fits `targets` (one vector of N values per target) from `train`
    /// `[N, D]` standardised, with the penalty [`RIDGE`] relative to N.
    pub fn fit(train: &Tensor, targets: &[Vec<f32>]) -> Result<Ridge> {
        Ridge::fit_scaled(train, targets, true)
    }

    /// [`Ridge::fit`] on features only centred, not scaled: for features
    /// in one unit (pixels), where scaling would magnify those that
    /// barely vary in the train split (a border pixel an object touched
    /// once).
    pub fn fit_centred(train: &Tensor, targets: &[Vec<f32>]) -> Result<Ridge> {
        Ridge::fit_scaled(train, targets, false)
    }

    fn fit_scaled(train: &Tensor, targets: &[Vec<f32>], scale: bool) -> Result<Ridge> {
        let op = "Ridge::fit";
        let s = train.shape();
        let (n, d) = match s {
            [n, d] if *n >= 2 && *d >= 1 => (*n, *d),
            _ => return Err(Error::shape(op, &[s], "expected [N >= 2, D] features")),
        };
        if targets.is_empty() || targets.iter().any(|y| y.len() != n) {
            return Err(Error::invalid(
                op,
                format!("needs one or more targets of {n} values each"),
            ));
        }
        let t = targets.len();
        let train_x = train.to_vec()?;
        let mut scaler = Standardizer::fit(&train_x, d);
        if !scale {
            scaler.inv_std.iter_mut().for_each(|s| *s = 1.0);
        }
        let xs = scaler.apply(&train_x);
        let intercepts: Vec<f64> = targets
            .iter()
            .map(|y| y.iter().map(|&v| v as f64).sum::<f64>() / n as f64)
            .collect();
        // Centred targets, row-major [N, T]: with standardised (zero-mean)
        // features the intercept is the targets' mean.
        let yc: Vec<f32> = (0..n)
            .flat_map(|i| (0..t).map(move |j| (i, j)))
            .map(|(i, j)| (targets[j][i] as f64 - intercepts[j]) as f32)
            .collect();
        let (gram, xty) = normal_equations(train.gpu(), &xs, &yc, n, d, t)?;
        let mut a: Vec<f64> = gram.iter().map(|&v| v as f64).collect();
        for i in 0..d {
            a[i * d + i] += RIDGE * n as f64;
        }
        let l = cholesky(&mut a, d).ok_or_else(|| {
            Error::invalid(
                op,
                "XᵀX + ridge is not positive definite (non-finite features?)",
            )
        })?;
        let weights = (0..t)
            .map(|j| {
                solve(
                    l,
                    d,
                    &(0..d).map(|i| xty[i * t + j] as f64).collect::<Vec<_>>(),
                )
            })
            .collect();
        Ok(Ridge {
            scaler,
            intercepts,
            weights,
        })
    }

    /// The prediction of every target for each row of `x` (`[M, D]`,
    /// row-major): one vector of M values per target.
    pub fn predict(&self, x: &[f32]) -> Vec<Vec<f64>> {
        let d = self.scaler.mean.len();
        let xs = self.scaler.apply(x);
        self.weights
            .iter()
            .zip(&self.intercepts)
            .map(|(w, b)| {
                xs.chunks_exact(d)
                    .map(|row| b + row.iter().zip(w).map(|(x, w)| x * w).sum::<f64>())
                    .collect()
            })
            .collect()
    }
}

/// XᵀX `[D, D]` and XᵀY `[D, T]` on the GPU, over row chunks that each fit
/// the storage binding limit.
fn normal_equations(
    gpu: &crate::Gpu,
    x: &[f64],
    y: &[f32],
    n: usize,
    d: usize,
    t: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let binding = gpu.limits().max_storage_buffer_binding_size;
    let rows = (binding / (d.max(t) as u64 * 4)).clamp(1, n as u64) as usize;
    let mut gram: Option<Tensor> = None;
    let mut xty: Option<Tensor> = None;
    for start in (0..n).step_by(rows) {
        let end = (start + rows).min(n);
        let xc: Vec<f32> = x[start * d..end * d].iter().map(|&v| v as f32).collect();
        let xc = Tensor::from_slice(gpu, &xc, &[end - start, d])?;
        let yc = Tensor::from_slice(gpu, &y[start * t..end * t], &[end - start, t])?;
        let g = matmul(&xc, &xc, true, false)?;
        let b = matmul(&xc, &yc, true, false)?;
        gram = Some(match gram {
            Some(acc) => ew::binary(&acc, &g, BinaryOp::Add)?,
            None => g,
        });
        xty = Some(match xty {
            Some(acc) => ew::binary(&acc, &b, BinaryOp::Add)?,
            None => b,
        });
        gpu.submit();
    }
    match (gram, xty) {
        (Some(g), Some(b)) => Ok((g.to_vec()?, b.to_vec()?)),
        _ => Err(Error::invalid("regression_probe", "no training rows")),
    }
}

/// In-place Cholesky factorisation of the symmetric `[d, d]` matrix `a`:
/// the lower triangle becomes L with a = L Lᵀ. `None` if `a` is not
/// positive definite.
fn cholesky(a: &mut [f64], d: usize) -> Option<&[f64]> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if diag.is_nan() || diag <= 0.0 {
            return None;
        }
        let diag = diag.sqrt();
        a[j * d + j] = diag;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / diag;
        }
    }
    Some(a)
}

/// Solves L Lᵀ w = b by forward then backward substitution.
fn solve(l: &[f64], d: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in 0..d {
        for k in 0..i {
            z[i] -= l[i * d + k] * z[k];
        }
        z[i] /= l[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            z[i] -= l[k * d + i] * z[k];
        }
        z[i] /= l[i * d + i];
    }
    z
}
