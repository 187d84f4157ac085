//! The mean row-wise cosine similarity `mean_r cos(p_r, z_r)` of two
//! `[N, D]` matrices: BYOL's loss is `2 - 2 cos` per view order, SimSiam's
//! `-cos`, each with a stop-gradient on the target side.
//!
//! The fused variant computes each row's dot product and norms in one
//! pass; the backward differentiates only the operands that need a
//! gradient (the target side of BYOL and SimSiam needs none).

use super::LossVariant;
use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::loss_cosine as kernel;
use crate::tensor::Tensor;

/// Records `mean_r cos(p_r, z_r)`, shape `[]`, for `p` and `z` `[N, D]`.
pub fn cosine_similarity(tape: &mut Tape, p: Var, z: Var, variant: LossVariant) -> Result<Var> {
    let (a, b) = (tape.shape(p)?, tape.shape(z)?);
    if a.len() != 2 || a != b || a.contains(&0) {
        return Err(Error::shape(
            "cosine_similarity",
            &[a, b],
            "the operands must be non-empty matrices [batch, dim] of the same shape",
        ));
    }
    let n = a[0];
    match variant {
        LossVariant::Fused => {
            let (tp, tz) = (tape.value(p)?.clone(), tape.value(z)?.clone());
            let f = kernel::forward(&tp, &tz)?;
            let saved = vec![tp, tz, f.cosine, f.inv_norms];
            tape.record_custom(Fused, &[p, z], f.mean, saved)
        }
        LossVariant::Unfused => {
            let u = normalize(tape, p, n)?;
            let v = normalize(tape, z, n)?;
            let prod = tape.mul(u, v)?;
            let cos = tape.sum(prod, 1)?;
            tape.mean_all(cos)
        }
    }
}

/// `x / |x|` row-wise on the tape (the fused kernel also clamps |x| below
/// at `kernel::EPS`, which no row near zero length reaches in practice).
fn normalize(tape: &mut Tape, x: Var, n: usize) -> Result<Var> {
    let sq = tape.square(x)?;
    let ss = tape.sum(sq, 1)?;
    let norm = tape.sqrt(ss)?;
    let norm = tape.reshape(norm, &[n, 1])?;
    tape.div(x, norm)
}

#[derive(Debug)]
struct Fused;

impl CustomOp for Fused {
    /// `saved` is `[p, z, cos, inv_norms]`.
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let [p, z, cosine, inv_norms] = saved else {
            return Err(Error::invalid(
                "cosine_similarity backward",
                "expected 4 saved tensors",
            ));
        };
        let grad = |wrt_z: bool| kernel::backward(p, z, cosine, inv_norms, g, wrt_z);
        Ok(vec![
            needs[0].then(|| grad(false)).transpose()?,
            needs[1].then(|| grad(true)).transpose()?,
        ])
    }
}
