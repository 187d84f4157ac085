//! Host side of `shaders/loss/cross_entropy.wgsl`: softmax cross-entropy
//! against class indices, forward and backward.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::kernels::reduce;
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/cross_entropy.wgsl");
const FORWARD: Kernel = Kernel::new("loss/cross_entropy", SOURCE, "forward");
const BACKWARD: Kernel = Kernel::new("loss/cross_entropy", SOURCE, "backward");

uniform! {
    pub(crate) struct Params {
        rows: u32,
        classes: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

fn check(logits: &Tensor, labels: &Tensor) -> Result<Params> {
    logits.same_gpu(labels, "cross_entropy")?;
    let shapes = [logits.shape(), labels.shape()];
    let &[rows, classes] = logits.shape() else {
        return Err(Error::shape(
            "cross_entropy",
            &shapes,
            "logits must be [rows, classes]",
        ));
    };
    if labels.shape() != [rows] {
        return Err(Error::shape(
            "cross_entropy",
            &shapes,
            "labels must be [rows]: one class index per row",
        ));
    }
    if rows == 0 || classes == 0 {
        return Err(Error::shape(
            "cross_entropy",
            &shapes,
            "needs at least one row and one class",
        ));
    }
    Ok(Params {
        rows: rows as u32,
        classes: classes as u32,
        _pad0: 0,
        _pad1: 0,
    })
}

/// The mean over rows of `-log softmax(logits)[label]`, shape `[]`, and the
/// per-row log-sum-exp `[rows]` that [`cross_entropy_backward`] reads.
/// `labels` holds class indices as f32; an index outside `0..classes`
/// selects no class, so that row's loss is its log-sum-exp.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let p = check(logits, labels)?;
    let gpu = logits.gpu();
    let rows = p.rows as usize;
    let per_row = Tensor::uninit(gpu, &[rows])?;
    let lse = Tensor::uninit(gpu, &[rows])?;
    let grid = gpu.grid((rows as u64).div_ceil(64))?;
    dispatch(
        gpu,
        &FORWARD,
        &[],
        &p,
        &[
            logits.binding(1),
            labels.binding(2),
            per_row.binding(3),
            lse.binding(4),
        ],
        grid,
    )?;
    Ok((reduce::mean_all(&per_row)?, lse))
}

/// d loss / d logits = g (softmax(logits) - onehot(label)) / rows, for the
/// upstream gradient `g` of shape `[]`.
pub fn cross_entropy_backward(
    logits: &Tensor,
    labels: &Tensor,
    lse: &Tensor,
    g: &Tensor,
) -> Result<Tensor> {
    let p = check(logits, labels)?;
    let gpu = logits.gpu();
    let dx = Tensor::uninit(gpu, logits.shape())?;
    let grid = gpu.grid((logits.numel() as u64).div_ceil(64))?;
    dispatch(
        gpu,
        &BACKWARD,
        &[],
        &p,
        &[
            logits.binding(1),
            labels.binding(2),
            lse.binding(3),
            g.binding(4),
            dx.binding(5),
        ],
        grid,
    )?;
    Ok(dx)
}
