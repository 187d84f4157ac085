//! Host side of `shaders/loss/cosine.wgsl`: the mean row-wise cosine
//! similarity of two `[rows, dim]` matrices, forward and backward.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::kernels::reduce;
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/cosine.wgsl");
const FORWARD: Kernel = Kernel::new("loss/cosine", SOURCE, "forward");
const BACKWARD: Kernel = Kernel::new("loss/cosine", SOURCE, "backward");

/// Norms are clamped below at this (PyTorch's `cosine_similarity` eps).
pub const EPS: f32 = 1e-8;

uniform! {
    pub(crate) struct Params {
        rows: u32,
        dim: u32,
        wrt: u32,
        eps: f32,
    }
}

fn check(p: &Tensor, z: &Tensor, wrt: u32) -> Result<Params> {
    p.same_gpu(z, "cosine_similarity")?;
    let shapes = [p.shape(), z.shape()];
    let &[rows, dim] = p.shape() else {
        return Err(Error::shape(
            "cosine_similarity",
            &shapes,
            "the operands must be matrices [rows, dim]",
        ));
    };
    if z.shape() != p.shape() || rows == 0 || dim == 0 {
        return Err(Error::shape(
            "cosine_similarity",
            &shapes,
            "the operands must be non-empty matrices of the same shape",
        ));
    }
    Ok(Params {
        rows: rows as u32,
        dim: dim as u32,
        wrt,
        eps: EPS,
    })
}

/// What the forward keeps for the backward.
pub struct Forward {
    /// The mean over rows of cos(p_r, z_r), shape `[]`.
    pub mean: Tensor,
    /// cos(p_r, z_r) per row, `[rows]`.
    pub cosine: Tensor,
    /// 1 / |p_r| and 1 / |z_r| per row, interleaved, `[rows, 2]`.
    pub inv_norms: Tensor,
}

/// The mean row-wise cosine similarity of `p` and `z`.
pub fn forward(p: &Tensor, z: &Tensor) -> Result<Forward> {
    let prm = check(p, z, 0)?;
    let gpu = p.gpu();
    let rows = prm.rows as usize;
    let cosine = Tensor::uninit(gpu, &[rows])?;
    let inv_norms = Tensor::uninit(gpu, &[rows, 2])?;
    let grid = gpu.grid((rows as u64).div_ceil(64))?;
    let b = [
        p.binding(1),
        z.binding(2),
        cosine.binding(3),
        inv_norms.binding(4),
    ];
    dispatch(gpu, &FORWARD, &[], &prm, &b, grid)?;
    Ok(Forward {
        mean: reduce::mean_all(&cosine)?,
        cosine,
        inv_norms,
    })
}

/// The gradient of `g * mean cos(p, z)` with respect to `p` (`wrt_z`
/// false) or `z` (true), from the forward's per-row `cosine` and
/// `inv_norms`.
pub fn backward(
    p: &Tensor,
    z: &Tensor,
    cosine: &Tensor,
    inv_norms: &Tensor,
    g: &Tensor,
    wrt_z: bool,
) -> Result<Tensor> {
    let prm = check(p, z, wrt_z as u32)?;
    let gpu = p.gpu();
    let grad = Tensor::uninit(gpu, p.shape())?;
    let grid = gpu.grid((p.numel() as u64).div_ceil(64))?;
    let b = [
        p.binding(1),
        z.binding(2),
        cosine.binding(3),
        inv_norms.binding(4),
        g.binding(5),
        grad.binding(6),
    ];
    dispatch(gpu, &BACKWARD, &[], &prm, &b, grid)?;
    Ok(grad)
}
