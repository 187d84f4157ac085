//! VICReg (Bardes, Ponce, LeCun 2022), as the reference implementation
//! defines it, for embeddings `za`, `zb` of shape `[N, D]`:
//!
//! - invariance: `mean((za - zb)²)` over all N·D entries;
//! - variance: per branch `std_j = sqrt(var_j + eps)` (unbiased variance over
//!   the batch), `mean_j relu(gamma - std_j)`, averaged over the branches;
//! - covariance: per branch `C = Zcᵀ Zc / (N - 1)` (Zc centred),
//!   `sum_{j != k} C_jk² / D`, summed over the branches;
//! - loss = 25 · invariance + 25 · variance + 1 · covariance by default.
//!
//! The fused variant never holds C: the forward reduces its tiles as they are
//! computed and the backward recomputes it one strip of rows at a time.

use super::{LossVariant, check_pair, off_diagonal_mask, weighted_sum};
use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::loss_vicreg::{self as kernel, VicregConfig};
use crate::tensor::Tensor;

/// The loss on the tape and its three unweighted terms for logging.
pub struct VicregOutput {
    /// `w_inv · invariance + w_var · variance + w_cov · covariance`, `[]`.
    pub loss: Var,
    /// Mean squared difference of the two views, `[]`.
    pub invariance: Tensor,
    /// The std hinge, averaged over dimensions and branches, `[]`.
    pub variance: Tensor,
    /// Squared off-diagonal covariance over D, summed over branches, `[]`.
    pub covariance: Tensor,
}

/// Records VICReg between `za` and `zb` (both `[N, D]`, N >= 2).
pub fn vicreg(
    tape: &mut Tape,
    za: Var,
    zb: Var,
    cfg: &VicregConfig,
    variant: LossVariant,
) -> Result<VicregOutput> {
    let (n, d) = check_pair("vicreg", tape, za, zb)?;
    match variant {
        LossVariant::Fused => {
            let (ta, tb) = (tape.value(za)?.clone(), tape.value(zb)?.clone());
            let f = kernel::forward(&ta, &tb, cfg)?;
            let [c0, c1] = f.centred;
            let saved = vec![ta, tb, c0, c1, f.variance];
            let loss = tape.record_custom(Fused(*cfg), &[za, zb], f.loss, saved)?;
            let [invariance, variance, covariance] = f.terms;
            Ok(VicregOutput {
                loss,
                invariance,
                variance,
                covariance,
            })
        }
        LossVariant::Unfused => unfused(tape, za, zb, n, d, cfg),
    }
}

/// The fused VICReg op on the tape; saves the inputs, the centred
/// embeddings and the per-column variances.
#[derive(Debug)]
struct Fused(VicregConfig);

impl CustomOp for Fused {
    /// `saved` is `[za, zb, zc_a, zc_b, var]`.
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [za, zb, c0, c1, var] = saved else {
            return Err(Error::invalid(
                "vicreg backward",
                "expected 5 saved tensors",
            ));
        };
        let [dza, dzb] = kernel::backward(za, zb, &[c0.clone(), c1.clone()], var, g, &self.0)?;
        Ok(vec![Some(dza), Some(dzb)])
    }
}

/// The same loss from generic tape ops; holds a D x D matrix per branch.
fn unfused(
    tape: &mut Tape,
    za: Var,
    zb: Var,
    n: usize,
    d: usize,
    cfg: &VicregConfig,
) -> Result<VicregOutput> {
    let diff = tape.sub(za, zb)?;
    let sq = tape.square(diff)?;
    let invariance = tape.mean_all(sq)?;

    let mask = Tensor::from_slice(tape.gpu(), &off_diagonal_mask(d), &[d, d])?;
    let mask = tape.constant(&mask)?;
    let unbiased = 1.0 / (n - 1) as f32;
    let mut hinges = Vec::new();
    let mut covs = Vec::new();
    for z in [za, zb] {
        let mean = tape.mean(z, 0)?;
        let zc = tape.sub(z, mean)?;
        let sq = tape.square(zc)?;
        let sum_sq = tape.sum(sq, 0)?;
        let var = tape.scale(sum_sq, unbiased)?;
        let var_eps = tape.add_scalar(var, cfg.eps)?;
        let std = tape.sqrt(var_eps)?;
        let neg = tape.scale(std, -1.0)?;
        let gap = tape.add_scalar(neg, cfg.gamma)?;
        let hinge = tape.relu(gap)?;
        hinges.push(tape.mean_all(hinge)?);

        let gram = tape.matmul(zc, zc, true, false)?;
        let c = tape.scale(gram, unbiased)?;
        let off = tape.mul(c, mask)?;
        let off_sq = tape.square(off)?;
        let total = tape.sum_all(off_sq)?;
        covs.push(tape.scale(total, 1.0 / d as f32)?);
    }
    let hinge_sum = tape.add(hinges[0], hinges[1])?;
    let variance = tape.scale(hinge_sum, 0.5)?;
    let covariance = tape.add(covs[0], covs[1])?;
    let loss = weighted_sum(
        tape,
        &[
            (cfg.invariance_weight, invariance),
            (cfg.variance_weight, variance),
            (cfg.covariance_weight, covariance),
        ],
    )?;
    Ok(VicregOutput {
        loss,
        invariance: tape.value(invariance)?.clone(),
        variance: tape.value(variance)?.clone(),
        covariance: tape.value(covariance)?.clone(),
    })
}
