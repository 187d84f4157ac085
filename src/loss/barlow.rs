//! Barlow Twins (Zbontar et al. 2021): the cross-correlation of the
//! batch-normalised (no affine) embeddings, `C = bn(za)ᵀ bn(zb) / N`, pulled
//! towards the identity:
//!
//! `loss = sum_i (1 - C_ii)² + lambda sum_{i != j} C_ij²`.
//!
//! The fused variant never holds C: the forward reduces its tiles as they are
//! computed and the backward recomputes it one strip of rows at a time.

use super::{LossVariant, check_pair, off_diagonal_mask};
use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::loss_barlow::{self as kernel, BarlowConfig};
use crate::tensor::Tensor;

/// Records Barlow Twins between `za` and `zb` (both `[N, D]`, N >= 2).
pub fn barlow_twins(
    tape: &mut Tape,
    za: Var,
    zb: Var,
    cfg: &BarlowConfig,
    variant: LossVariant,
) -> Result<Var> {
    let (n, d) = check_pair("barlow_twins", tape, za, zb)?;
    match variant {
        LossVariant::Fused => {
            let (ta, tb) = (tape.value(za)?.clone(), tape.value(zb)?.clone());
            let f = kernel::forward(&ta, &tb, cfg)?;
            let [xa, xb] = f.normalized;
            let saved = vec![xa, xb, f.std];
            tape.record_custom(Fused(*cfg), &[za, zb], f.loss, saved)
        }
        LossVariant::Unfused => unfused(tape, za, zb, n, d, cfg),
    }
}

/// The fused Barlow Twins op on the tape; saves the batch-normalised
/// embeddings and the per-column stds.
#[derive(Debug)]
struct Fused(BarlowConfig);

impl CustomOp for Fused {
    /// `saved` is `[xa, xb, std]`.
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [xa, xb, std] = saved else {
            return Err(Error::invalid(
                "barlow backward",
                "expected 3 saved tensors",
            ));
        };
        let [dza, dzb] = kernel::backward(&[xa.clone(), xb.clone()], std, g, &self.0)?;
        Ok(vec![Some(dza), Some(dzb)])
    }
}

/// `(z - mean) / sqrt(var + eps)` per column, biased variance.
fn batch_norm(tape: &mut Tape, z: Var, eps: f32) -> Result<Var> {
    let mean = tape.mean(z, 0)?;
    let zc = tape.sub(z, mean)?;
    let sq = tape.square(zc)?;
    let var = tape.mean(sq, 0)?;
    let var_eps = tape.add_scalar(var, eps)?;
    let std = tape.sqrt(var_eps)?;
    tape.div(zc, std)
}

/// The same loss from generic tape ops; holds the D x D matrix C.
fn unfused(
    tape: &mut Tape,
    za: Var,
    zb: Var,
    n: usize,
    d: usize,
    cfg: &BarlowConfig,
) -> Result<Var> {
    let xa = batch_norm(tape, za, cfg.eps)?;
    let xb = batch_norm(tape, zb, cfg.eps)?;
    let cross = tape.matmul(xa, xb, true, false)?;
    let c = tape.scale(cross, 1.0 / n as f32)?;
    // C - I on the diagonal, lambda-weighted C elsewhere: (1 - C_ii)² and
    // lambda C_ij² then come from one square.
    let eye: Vec<f32> = off_diagonal_mask(d).iter().map(|m| 1.0 - m).collect();
    let eye = tape.constant(&Tensor::from_slice(tape.gpu(), &eye, &[d, d])?)?;
    let weights: Vec<f32> = off_diagonal_mask(d)
        .iter()
        .map(|m| if *m > 0.0 { cfg.lambda.sqrt() } else { 1.0 })
        .collect();
    let weights = tape.constant(&Tensor::from_slice(tape.gpu(), &weights, &[d, d])?)?;
    let shifted = tape.sub(c, eye)?;
    let weighted = tape.mul(shifted, weights)?;
    let sq = tape.square(weighted)?;
    tape.sum_all(sq)
}
