//! Host side of `shaders/loss/barlow.wgsl` (with the cross-correlation tiles
//! of `gram.wgsl`): the fused Barlow Twins forward and backward.

use super::loss_gram::{Penalty, Product, View, strip_rows};
use super::reduce;
use crate::error::Result;
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/barlow.wgsl");
const NORMALIZE: Kernel = Kernel::new("loss/barlow", SOURCE, "normalize");
const BN_BACKWARD: Kernel = Kernel::new("loss/barlow", SOURCE, "bn_backward");

/// Barlow Twins' settings; `Default` is the paper's lambda = 0.0051, with
/// BatchNorm's eps = 1e-5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BarlowConfig {
    /// Weight of the squared off-diagonal cross-correlations.
    pub lambda: f32,
    /// Added to the (biased) variance in the batch normalisation.
    pub eps: f32,
}

impl Default for BarlowConfig {
    fn default() -> Self {
        BarlowConfig {
            lambda: 0.0051,
            eps: 1e-5,
        }
    }
}

uniform! {
    pub(crate) struct Params {
        n: u32,
        d: u32,
        branch: u32,
        _pad0: u32,
        eps: f32,
        _pad1: f32,
        _pad2: f32,
        _pad3: f32,
    }
}

fn params(n: usize, d: usize, branch: usize, cfg: &BarlowConfig) -> Params {
    Params {
        n: n as u32,
        d: d as u32,
        branch: branch as u32,
        _pad0: 0,
        eps: cfg.eps,
        _pad1: 0.0,
        _pad2: 0.0,
        _pad3: 0.0,
    }
}

/// What the forward computes and the backward reads.
pub struct BarlowForward {
    /// The loss, `[]`.
    pub loss: Tensor,
    /// The batch-normalised embeddings of each branch, `[n, d]`.
    pub normalized: [Tensor; 2],
    /// Per-column std of each branch, `[2, d]`.
    pub std: Tensor,
}

/// `sum_i (1 - C_ii)² + lambda sum_{i != j} C_ij²` on `C = xaᵀ xb / n`.
fn penalty(n: usize, cfg: &BarlowConfig) -> Penalty {
    Penalty {
        acc_scale: 1.0 / n as f32,
        w_off: cfg.lambda,
        w_diag: 1.0,
        t_diag: 1.0,
        symmetric: false,
    }
}

/// Column `j` of the matrix as row `j` of a product over the batch.
fn columns(x: &Tensor, d: usize, first: usize) -> View<'_> {
    View {
        t: x,
        off: first,
        row_stride: 1,
        k_stride: d,
    }
}

/// Row `i` of the matrix as row `i` of a product over the columns.
fn rows(x: &Tensor, d: usize, first_col: usize) -> View<'_> {
    View {
        t: x,
        off: first_col,
        row_stride: d,
        k_stride: 1,
    }
}

/// The fused forward for two views `[n, d]` (checked by the caller).
pub fn forward(za: &Tensor, zb: &Tensor, cfg: &BarlowConfig) -> Result<BarlowForward> {
    let gpu = za.gpu();
    let (n, d) = (za.shape()[0], za.shape()[1]);
    let std = Tensor::uninit(gpu, &[2, d])?;
    let normalized = [Tensor::uninit(gpu, &[n, d])?, Tensor::uninit(gpu, &[n, d])?];
    for (branch, x) in normalized.iter().enumerate() {
        dispatch(
            gpu,
            &NORMALIZE,
            &[],
            &params(n, d, branch, cfg),
            &[za.binding(1), zb.binding(2), x.binding(3), std.binding(4)],
            [d.div_ceil(64) as u32, 1, 1],
        )?;
    }
    let [xa, xb] = &normalized;
    let cross = Product {
        a: columns(xa, d, 0),
        b: columns(xb, d, 0),
        m: d,
        n: d,
        k: n,
        diag_off: 0,
    };
    let partial = Tensor::uninit(gpu, &[cross.partials()])?;
    cross.penalty(penalty(n, cfg), &partial, 0)?;
    Ok(BarlowForward {
        loss: reduce::sum_all(&partial)?,
        normalized,
        std,
    })
}

/// dL/dza and dL/dzb for an upstream gradient `g` (shape `[]`).
pub fn backward(
    normalized: &[Tensor; 2],
    std: &Tensor,
    g: &Tensor,
    cfg: &BarlowConfig,
) -> Result<[Tensor; 2]> {
    let [xa, xb] = normalized;
    let gpu = xa.gpu();
    let (n, d) = (xa.shape()[0], xa.shape()[1]);
    let dxa = Tensor::zeros(gpu, &[n, d])?;
    let dxb = Tensor::zeros(gpu, &[n, d])?;
    let height = strip_rows(gpu, n, d);
    let strip = Tensor::uninit(gpu, &[height, d])?;
    let inv_n = 1.0 / n as f32;
    // With G = dL/dC built one strip of rows I at a time:
    // dxb += xa[:, I] · G[I, :] / n and dxa[:, I] += xb · G[I, :]ᵀ / n.
    for s0 in (0..d).step_by(height) {
        let h = height.min(d - s0);
        let strip_of_c = Product {
            a: columns(xa, d, s0),
            b: columns(xb, d, 0),
            m: h,
            n: d,
            k: n,
            diag_off: s0,
        };
        strip_of_c.grad_strip(penalty(n, cfg), 1.0, g, &strip)?;
        let into_b = Product {
            a: rows(xa, d, s0),
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
        into_b.accumulate(inv_n, &dxb, 0, d)?;
        let into_a = Product {
            a: rows(xb, d, 0),
            b: View {
                t: &strip,
                off: 0,
                row_stride: d,
                k_stride: 1,
            },
            m: n,
            n: h,
            k: d,
            diag_off: 0,
        };
        into_a.accumulate(inv_n, &dxa, s0, d)?;
    }
    let through_bn = |branch: usize, dx: &Tensor| -> Result<Tensor> {
        let dz = Tensor::uninit(gpu, &[n, d])?;
        dispatch(
            gpu,
            &BN_BACKWARD,
            &[],
            &params(n, d, branch, cfg),
            &[
                normalized[branch].binding(3),
                std.binding(4),
                dx.binding(5),
                dz.binding(6),
            ],
            [d.div_ceil(64) as u32, 1, 1],
        )?;
        Ok(dz)
    };
    Ok([through_bn(0, &dxa)?, through_bn(1, &dxb)?])
}
