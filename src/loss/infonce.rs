//! InfoNCE / NT-Xent (SimCLR): 2N embeddings from two views, L2-normalised
//! inside the op; each anchor's positive is its other view and its 2N - 2
//! negatives are every other embedding (self-similarity excluded):
//!
//! `loss = mean_i [ log sum_{j != i} exp(s_ij) - s_i,p(i) ]`,
//! `s_ij = u_i · u_j / tau`.
//!
//! The fused variant computes each row's log-sum-exp online over column
//! tiles and recomputes the similarities in the backward, so the 2N x 2N
//! matrix is never stored.

use super::{LossVariant, check_pair, off_diagonal_mask};
use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::loss_infonce::{self as kernel, InfoNceConfig};
use crate::tensor::Tensor;

/// Records InfoNCE between the views `za` and `zb` (both `[N, D]`, N >= 2).
pub fn infonce(
    tape: &mut Tape,
    za: Var,
    zb: Var,
    cfg: &InfoNceConfig,
    variant: LossVariant,
) -> Result<Var> {
    let (n, _) = check_pair("infonce", tape, za, zb)?;
    if !(cfg.temperature > 0.0 && cfg.temperature.is_finite()) {
        return Err(Error::invalid(
            "infonce",
            format!("the temperature must be positive, got {}", cfg.temperature),
        ));
    }
    match variant {
        LossVariant::Fused => {
            let (ta, tb) = (tape.value(za)?.clone(), tape.value(zb)?.clone());
            let f = kernel::forward(&ta, &tb, cfg)?;
            let saved = vec![f.normalized, f.norms, f.lse];
            tape.record_custom(Fused(*cfg), &[za, zb], f.loss, saved)
        }
        LossVariant::Unfused => unfused(tape, za, zb, n, cfg),
    }
}

/// The fused InfoNCE (NT-Xent) op on the tape; saves the normalised
/// embeddings, their norms and each row's log-sum-exp.
#[derive(Debug)]
struct Fused(InfoNceConfig);

impl CustomOp for Fused {
    /// `saved` is `[u, norms, lse]`.
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [u, norms, lse] = saved else {
            return Err(Error::invalid(
                "infonce backward",
                "expected 3 saved tensors",
            ));
        };
        let [dza, dzb] = kernel::backward(u, norms, lse, g, &self.0)?;
        Ok(vec![Some(dza), Some(dzb)])
    }
}

/// `z / |z|` row-wise on the tape.
fn normalize(tape: &mut Tape, z: Var, n: usize) -> Result<Var> {
    let sq = tape.square(z)?;
    let ss = tape.sum(sq, 1)?;
    let norm = tape.sqrt(ss)?;
    let norm = tape.reshape(norm, &[n, 1])?;
    tape.div(z, norm)
}

/// The same loss from generic tape ops over the four N x N blocks of the
/// similarity matrix. The log-sum-exp needs no running max: |s| <= 1/tau,
/// so exp cannot overflow f32 for tau above ~0.012.
fn unfused(tape: &mut Tape, za: Var, zb: Var, n: usize, cfg: &InfoNceConfig) -> Result<Var> {
    let inv_tau = 1.0 / cfg.temperature;
    let ua = normalize(tape, za, n)?;
    let ub = normalize(tape, zb, n)?;
    let mask = Tensor::from_slice(tape.gpu(), &off_diagonal_mask(n), &[n, n])?;
    let mask = tape.constant(&mask)?;

    // The four N x N blocks of the 2N x 2N similarity matrix; the lower-left
    // one is the transpose of the upper-right.
    let exp_block = |tape: &mut Tape, x: Var, y: Var| -> Result<Var> {
        let dots = tape.matmul(x, y, false, true)?;
        let s = tape.scale(dots, inv_tau)?;
        tape.exp(s)
    };
    let e_aa = exp_block(tape, ua, ua)?;
    let e_ab = exp_block(tape, ua, ub)?;
    let e_bb = exp_block(tape, ub, ub)?;
    let e_aa = tape.mul(e_aa, mask)?;
    let e_bb = tape.mul(e_bb, mask)?;

    // Anchors of view a: row sums of [e_aa | e_ab]; of view b: row sums of
    // [e_ba | e_bb], where the rows of e_ba are the columns of e_ab.
    let rows_aa = tape.sum(e_aa, 1)?;
    let rows_ab = tape.sum(e_ab, 1)?;
    let sum_a = tape.add(rows_aa, rows_ab)?;
    let cols_ab = tape.sum(e_ab, 0)?;
    let rows_bb = tape.sum(e_bb, 1)?;
    let sum_b = tape.add(cols_ab, rows_bb)?;
    let lse_a = tape.log(sum_a)?;
    let lse_b = tape.log(sum_b)?;
    let lse_total_a = tape.sum_all(lse_a)?;
    let lse_total_b = tape.sum_all(lse_b)?;
    let lse_total = tape.add(lse_total_a, lse_total_b)?;

    // Both anchors of a pair share the positive logit u_a · u_b / tau.
    let pair = tape.mul(ua, ub)?;
    let pos_total = tape.sum_all(pair)?;
    let pos_total = tape.scale(pos_total, 2.0 * inv_tau)?;
    let total = tape.sub(lse_total, pos_total)?;
    tape.scale(total, 1.0 / (2 * n) as f32)
}
