//! Host side of `shaders/loss/infonce.wgsl`: the fused InfoNCE / NT-Xent
//! forward and backward, streaming over column tiles so that the 2N x 2N
//! similarity matrix is never stored.

use super::reduce;
use crate::error::Result;
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/infonce.wgsl");
const NORMALIZE: Kernel = Kernel::new("loss/infonce", SOURCE, "normalize");
const FORWARD: Kernel = Kernel::new("loss/infonce", SOURCE, "forward");
const BACKWARD: Kernel = Kernel::new("loss/infonce", SOURCE, "backward");
const FINISH: Kernel = Kernel::new("loss/infonce", SOURCE, "finish");

/// Anchor rows per invocation and invocations per workgroup (as in the shader).
const RB: usize = 8;
const WG: usize = 16;

/// The floor on a row's norm before it divides (as torch's `F.normalize`).
const NORM_EPS: f32 = 1e-12;

/// InfoNCE's settings; `Default` is SimCLR's temperature 0.2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InfoNceConfig {
    /// The temperature tau dividing the cosine similarities.
    pub temperature: f32,
}

impl Default for InfoNceConfig {
    fn default() -> Self {
        InfoNceConfig { temperature: 0.2 }
    }
}

uniform! {
    pub(crate) struct Params {
        n: u32,
        d: u32,
        _pad0: u32,
        _pad1: u32,
        inv_tau: f32,
        coef: f32,
        eps: f32,
        _pad2: f32,
    }
}

fn params(n: usize, d: usize, cfg: &InfoNceConfig) -> Params {
    Params {
        n: n as u32,
        d: d as u32,
        _pad0: 0,
        _pad1: 0,
        inv_tau: 1.0 / cfg.temperature,
        coef: 1.0 / (2.0 * n as f32 * cfg.temperature),
        eps: NORM_EPS,
        _pad2: 0.0,
    }
}

/// What the forward computes and the backward reads.
pub struct InfoNceForward {
    /// The mean loss over the 2N anchors, `[]`.
    pub loss: Tensor,
    /// The normalised embeddings, `[2N, d]`, za's rows first.
    pub normalized: Tensor,
    /// The norm of each row, `[2N]`.
    pub norms: Tensor,
    /// Each anchor's log-sum-exp over its 2N - 1 candidates, `[2N]`.
    pub lse: Tensor,
}

fn anchor_groups(rows: usize) -> [u32; 3] {
    [rows.div_ceil(RB).div_ceil(WG) as u32, 1, 1]
}

/// The fused forward for two views `[n, d]` (checked by the caller).
pub fn forward(za: &Tensor, zb: &Tensor, cfg: &InfoNceConfig) -> Result<InfoNceForward> {
    let gpu = za.gpu();
    let (n, d) = (za.shape()[0], za.shape()[1]);
    let p = params(n, d, cfg);
    let normalized = Tensor::uninit(gpu, &[2 * n, d])?;
    let norms = Tensor::uninit(gpu, &[2 * n])?;
    dispatch(
        gpu,
        &NORMALIZE,
        &[],
        &p,
        &[
            za.binding(1),
            zb.binding(2),
            normalized.binding(3),
            norms.binding(4),
        ],
        [(2 * n).div_ceil(64) as u32, 1, 1],
    )?;
    let lse = Tensor::uninit(gpu, &[2 * n])?;
    let row_loss = Tensor::uninit(gpu, &[2 * n])?;
    dispatch(
        gpu,
        &FORWARD,
        &[],
        &p,
        &[normalized.binding(3), lse.binding(5), row_loss.binding(6)],
        anchor_groups(2 * n),
    )?;
    Ok(InfoNceForward {
        loss: reduce::mean_all(&row_loss)?,
        normalized,
        norms,
        lse,
    })
}

/// dL/dza and dL/dzb for an upstream gradient `g` (shape `[]`).
pub fn backward(
    normalized: &Tensor,
    norms: &Tensor,
    lse: &Tensor,
    g: &Tensor,
    cfg: &InfoNceConfig,
) -> Result<[Tensor; 2]> {
    let gpu = normalized.gpu();
    let (rows, d) = (normalized.shape()[0], normalized.shape()[1]);
    let n = rows / 2;
    let p = params(n, d, cfg);
    let du = Tensor::zeros(gpu, &[rows, d])?;
    dispatch(
        gpu,
        &BACKWARD,
        &[],
        &p,
        &[normalized.binding(3), lse.binding(5), du.binding(8)],
        anchor_groups(rows),
    )?;
    let dza = Tensor::uninit(gpu, &[n, d])?;
    let dzb = Tensor::uninit(gpu, &[n, d])?;
    dispatch(
        gpu,
        &FINISH,
        &[],
        &p,
        &[
            normalized.binding(3),
            norms.binding(4),
            g.binding(7),
            du.binding(8),
            dza.binding(9),
            dzb.binding(10),
        ],
        [rows.div_ceil(64) as u32, 1, 1],
    )?;
    Ok([dza, dzb])
}
