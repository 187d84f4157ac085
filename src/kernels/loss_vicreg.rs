//! Host side of `shaders/loss/vicreg.wgsl` (with the covariance tiles of
//! `gram.wgsl`): the fused VICReg forward and backward.

use super::loss_gram::{Penalty, Product, View, strip_rows};
use super::reduce;
use crate::error::Result;
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/vicreg.wgsl");
const STATS: Kernel = Kernel::new("loss/vicreg", SOURCE, "stats");
const FINISH: Kernel = Kernel::new("loss/vicreg", SOURCE, "finish");
const GRAD_INIT: Kernel = Kernel::new("loss/vicreg", SOURCE, "grad_init");

/// VICReg's coefficients; `Default` is the paper's (25, 25, 1), with
/// gamma = 1 and eps = 1e-4 as in the reference implementation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VicregConfig {
    /// Weight of the invariance (MSE) term.
    pub invariance_weight: f32,
    /// Weight of the variance (std hinge) term.
    pub variance_weight: f32,
    /// Weight of the covariance (off-diagonal) term.
    pub covariance_weight: f32,
    /// The target standard deviation of each dimension.
    pub gamma: f32,
    /// Added to the variance under the square root.
    pub eps: f32,
}

impl Default for VicregConfig {
    fn default() -> Self {
        VicregConfig {
            invariance_weight: 25.0,
            variance_weight: 25.0,
            covariance_weight: 1.0,
            gamma: 1.0,
            eps: 1e-4,
        }
    }
}

uniform! {
    pub(crate) struct Params {
        n: u32,
        d: u32,
        branch: u32,
        batch_gram: u32,
        eps: f32,
        gamma: f32,
        w_inv: f32,
        w_var: f32,
        w_cov: f32,
        _pad1: u32,
        _pad2: u32,
        _pad3: u32,
    }
}

fn params(cfg: &VicregConfig, n: usize, d: usize, branch: u32) -> Params {
    Params {
        n: n as u32,
        d: d as u32,
        branch,
        batch_gram: batch_gram(n, d) as u32,
        eps: cfg.eps,
        gamma: cfg.gamma,
        w_inv: cfg.invariance_weight,
        w_var: cfg.variance_weight,
        w_cov: cfg.covariance_weight,
        _pad1: 0,
        _pad2: 0,
        _pad3: 0,
    }
}

/// What the forward computes and the backward reads.
pub struct VicregForward {
    /// The weighted loss, shape `[]`.
    pub loss: Tensor,
    /// The unweighted invariance, variance and covariance terms, each `[]`.
    pub terms: [Tensor; 3],
    /// Centred embeddings of each branch, `[n, d]`.
    pub centred: [Tensor; 2],
    /// Per-column unbiased variance of each branch, `[2, d]`.
    pub variance: Tensor,
}

/// Whether the covariance goes through the N x N batch Gram matrix
/// K = Zc Zcᵀ / (n-1) instead of the D x D C = ZcᵀZc / (n-1): the same
/// squared sum and the same product with Zc (K·Zc = Zc·C) at N²D instead
/// of ND² cost. Its off-diagonal sum subtracts the diagonal, sum var², from
/// |K|²; with n < d the off-diagonal part is the larger one, so little
/// precision is lost.
fn batch_gram(n: usize, d: usize) -> bool {
    n < d
}

/// `Zc Zcᵀ` of one branch as a product over the columns.
fn batch_product(zc: &Tensor, n: usize, d: usize) -> Product<'_> {
    let rows = View {
        t: zc,
        off: 0,
        row_stride: d,
        k_stride: 1,
    };
    Product {
        a: rows,
        b: rows,
        m: n,
        n,
        k: d,
        diag_off: 0,
    }
}

/// `sum_{i,k} K_ik²` on `K = Zc Zcᵀ / (n-1)` (diagonal included).
fn squared_sum(n: usize) -> Penalty {
    Penalty {
        w_diag: 1.0,
        ..off_diagonal(n)
    }
}

/// `ZcᵀZc` of one branch as a product over the batch.
fn covariance(zc: &Tensor, n: usize, d: usize) -> Product<'_> {
    Product {
        // A(j, i) = Zc[i, j] and B(i, k) = Zc[i, k].
        a: View {
            t: zc,
            off: 0,
            row_stride: 1,
            k_stride: d,
        },
        b: View {
            t: zc,
            off: 0,
            row_stride: 1,
            k_stride: d,
        },
        m: d,
        n: d,
        k: n,
        diag_off: 0,
    }
}

/// The penalty `sum_{j != k} c_jk²` on `c = ZcᵀZc / (n - 1)`.
fn off_diagonal(n: usize) -> Penalty {
    Penalty {
        acc_scale: 1.0 / (n - 1) as f32,
        w_off: 1.0,
        w_diag: 0.0,
        t_diag: 0.0,
        symmetric: true,
    }
}

/// The fused forward for embeddings `za`, `zb` of shape `[n, d]` (checked by
/// the caller: n >= 2, d >= 1, equal shapes).
pub fn forward(za: &Tensor, zb: &Tensor, cfg: &VicregConfig) -> Result<VicregForward> {
    let gpu = za.gpu();
    let (n, d) = (za.shape()[0], za.shape()[1]);
    let variance = Tensor::uninit(gpu, &[2, d])?;
    let colsum = Tensor::uninit(gpu, &[5, d])?;
    let centred = [Tensor::uninit(gpu, &[n, d])?, Tensor::uninit(gpu, &[n, d])?];
    for (branch, zc) in centred.iter().enumerate() {
        let p = params(cfg, n, d, branch as u32);
        dispatch(
            gpu,
            &STATS,
            &[],
            &p,
            &[
                za.binding(1),
                zb.binding(2),
                zc.binding(3),
                variance.binding(4),
                colsum.binding(5),
            ],
            [d.div_ceil(64) as u32, 1, 1],
        )?;
    }
    let (product, penalty): (fn(&Tensor, usize, usize) -> Product<'_>, _) = if batch_gram(n, d) {
        (batch_product, squared_sum(n))
    } else {
        (covariance, off_diagonal(n))
    };
    let per_branch = product(&centred[0], n, d).partials();
    let partial = Tensor::uninit(gpu, &[2 * per_branch])?;
    for (branch, zc) in centred.iter().enumerate() {
        product(zc, n, d).penalty(penalty, &partial, branch * per_branch)?;
    }
    let cov_sum = reduce::sum_all(&partial)?;
    let sums = reduce::sum_axis(&colsum, 1)?;
    let loss = Tensor::uninit(gpu, &[])?;
    let terms = [
        Tensor::uninit(gpu, &[])?,
        Tensor::uninit(gpu, &[])?,
        Tensor::uninit(gpu, &[])?,
    ];
    dispatch(
        gpu,
        &FINISH,
        &[],
        &params(cfg, n, d, 0),
        &[
            sums.binding(8),
            cov_sum.binding(9),
            loss.binding(10),
            terms[0].binding(11),
            terms[1].binding(12),
            terms[2].binding(13),
        ],
        [1, 1, 1],
    )?;
    Ok(VicregForward {
        loss,
        terms,
        centred,
        variance,
    })
}

/// dL/dza and dL/dzb for an upstream gradient `g` (shape `[]`).
pub fn backward(
    za: &Tensor,
    zb: &Tensor,
    centred: &[Tensor; 2],
    variance: &Tensor,
    g: &Tensor,
    cfg: &VicregConfig,
) -> Result<[Tensor; 2]> {
    let gpu = za.gpu();
    let (n, d) = (za.shape()[0], za.shape()[1]);
    // L_cov = (1/D) sum_{j != k} C_jk² with C = ZcᵀZc / (n-1), so
    // dL/dZc = Zc (G + Gᵀ) / (n-1) = 2 Zc G / (n-1) for the symmetric
    // G = dL/dC = 2 C_off / D, built one strip of rows at a time. On the
    // batch Gram path 2 Zc G / (n-1) = (4 / (D (n-1))) (K·Zc - Zc diag(var)),
    // with K built in strips and the diagonal part added by grad_init.
    let width = if batch_gram(n, d) { n } else { d };
    let strip = Tensor::uninit(gpu, &[strip_rows(gpu, n.min(d), width), width])?;
    let rows = strip.shape()[0];
    let branch = |b: usize| -> Result<Tensor> {
        let zc = &centred[b];
        let dz = Tensor::uninit(gpu, &[n, d])?;
        dispatch(
            gpu,
            &GRAD_INIT,
            &[],
            &params(cfg, n, d, b as u32),
            &[
                za.binding(1),
                zb.binding(2),
                zc.binding(3),
                variance.binding(4),
                g.binding(6),
                dz.binding(7),
            ],
            gpu.grid((n * d).div_ceil(256) as u64)?,
        )?;
        for s0 in (0..width).step_by(rows) {
            let h = rows.min(width - s0);
            if batch_gram(n, d) {
                let strip_of_k = Product {
                    a: View {
                        off: s0 * d,
                        ..batch_product(zc, n, d).a
                    },
                    m: h,
                    diag_off: s0,
                    ..batch_product(zc, n, d)
                };
                let scale = 2.0 * cfg.covariance_weight / (d * (n - 1)) as f32;
                strip_of_k.grad_strip(squared_sum(n), scale, g, &strip)?;
                // dZ[s0 .. s0 + h, :] += K[s0 .. s0 + h, :] · Zc.
                let apply = Product {
                    a: View {
                        t: &strip,
                        off: 0,
                        row_stride: n,
                        k_stride: 1,
                    },
                    b: View {
                        t: zc,
                        off: 0,
                        row_stride: 1,
                        k_stride: d,
                    },
                    m: h,
                    n: d,
                    k: n,
                    diag_off: 0,
                };
                apply.accumulate(1.0, &dz, s0 * d, d)?;
            } else {
                let strip_of_c = Product {
                    a: View {
                        t: zc,
                        off: s0,
                        row_stride: 1,
                        k_stride: d,
                    },
                    m: h,
                    diag_off: s0,
                    ..covariance(zc, n, d)
                };
                let scale = cfg.covariance_weight / d as f32;
                strip_of_c.grad_strip(off_diagonal(n), scale, g, &strip)?;
                // dZ[:, :] += Zc[:, s0 .. s0 + h] · G[s0 .. s0 + h, :].
                let apply = Product {
                    a: View {
                        t: zc,
                        off: s0,
                        row_stride: d,
                        k_stride: 1,
                    },
                    b: View {
                        t: &strip,
                        off: 0,
                        row_stride: 1,
                        k_stride: d,
                    },
                    m: n,
                    n: d,
                    k: h,
                    diag_off: 0,
                };
                apply.accumulate(2.0 / (n - 1) as f32, &dz, 0, d)?;
            }
        }
        Ok(dz)
    };
    Ok([branch(0)?, branch(1)?])
}
