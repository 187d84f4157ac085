//! Self-supervised losses, each in two variants: a fused op with its own
//! forward and backward kernels (the default, and the only one that fits
//! large batches or wide embeddings), and an unfused composition of generic
//! tape ops kept as the readable reference and the benchmark baseline.
//!
//! - [`vicreg()`]: invariance + variance + covariance (Bardes et al. 2022).
//! - [`infonce()`]: NT-Xent over two views (SimCLR).
//! - [`barlow_twins()`]: cross-correlation towards the identity.
//! - [`cosine_similarity()`]: mean row-wise cosine (BYOL, SimSiam).
//! - [`cross_entropy()`]: softmax cross-entropy (the linear probe's).
//! - [`masked_mse()`]: reconstruction error over masked patches (MAE).
//! - [`monitors`]: collapse monitors computed on demand.

pub mod barlow;
pub mod cosine;
pub mod cross_entropy;
pub mod infonce;
pub mod masked;
pub mod monitors;
pub mod vicreg;

pub use crate::kernels::loss_barlow::BarlowConfig;
pub use crate::kernels::loss_infonce::InfoNceConfig;
pub use crate::kernels::loss_vicreg::VicregConfig;
pub use barlow::barlow_twins;
pub use cosine::cosine_similarity;
pub use cross_entropy::cross_entropy;
pub use infonce::infonce;
pub use masked::masked_mse;
pub use vicreg::{VicregOutput, vicreg};

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};

/// Which implementation of a loss to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossVariant {
    /// One op with hand-written forward and backward kernels, tiled so that
    /// no N x N or D x D matrix is stored.
    Fused,
    /// Generic tape ops (matmul, reductions, elementwise): the reference.
    Unfused,
}

impl LossVariant {
    /// Both variants.
    pub const ALL: [LossVariant; 2] = [LossVariant::Fused, LossVariant::Unfused];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            LossVariant::Fused => "fused",
            LossVariant::Unfused => "unfused",
        }
    }
}

/// Checks that `za` and `zb` are both `[n, d]` with n >= 2 and d >= 1, and
/// returns `(n, d)`.
fn check_pair(op: &'static str, tape: &Tape, za: Var, zb: Var) -> Result<(usize, usize)> {
    let (a, b) = (tape.shape(za)?, tape.shape(zb)?);
    if a.len() != 2 || a != b {
        return Err(Error::shape(
            op,
            &[a, b],
            "the two views must be matrices [batch, dim] of the same shape",
        ));
    }
    let (n, d) = (a[0], a[1]);
    if n < 2 {
        return Err(Error::shape(op, &[a, b], "the batch needs at least 2 rows"));
    }
    if d == 0 {
        return Err(Error::shape(
            op,
            &[a, b],
            "the embeddings are empty (dim 0)",
        ));
    }
    Ok((n, d))
}

/// `sum_i w_i * t_i` on the tape.
fn weighted_sum(tape: &mut Tape, terms: &[(f32, Var)]) -> Result<Var> {
    let mut total: Option<Var> = None;
    for &(w, t) in terms {
        let wt = tape.scale(t, w)?;
        total = Some(match total {
            Some(acc) => tape.add(acc, wt)?,
            None => wt,
        });
    }
    total.ok_or_else(|| Error::invalid("weighted_sum", "no terms"))
}

/// A `[d, d]` matrix of ones with a zero diagonal.
fn off_diagonal_mask(d: usize) -> Vec<f32> {
    let mut m = vec![1.0; d * d];
    for j in 0..d {
        m[j * d + j] = 0.0;
    }
    m
}
