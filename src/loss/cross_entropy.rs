//! Softmax cross-entropy: one fused op whose backward reads the
//! log-sum-exp its forward saved (the linear probe's loss).

use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::cross_entropy as ce;
use crate::tensor::Tensor;

/// The mean over rows of `-log softmax(logits)[label]` for `[rows,
/// classes]` logits and `labels` `[rows]` holding class indices as f32
/// (PyTorch's `cross_entropy` with mean reduction). The labels get no
/// gradient; an index outside `0..classes` selects no class.
pub fn cross_entropy(tape: &mut Tape, logits: Var, labels: &Tensor) -> Result<Var> {
    let x = tape.value(logits)?.clone();
    let (loss, lse) = ce::cross_entropy(&x, labels)?;
    tape.record_custom(Fused, &[logits], loss, vec![x, labels.clone(), lse])
}

#[derive(Debug)]
struct Fused;

impl CustomOp for Fused {
    /// d loss / d logits = g (softmax - onehot) / rows, from saved `[logits,
    /// labels, lse]`.
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [logits, labels, lse] = saved else {
            return Err(Error::invalid(
                "cross_entropy backward",
                "expected 3 saved tensors",
            ));
        };
        let dx = ce::cross_entropy_backward(logits, labels, lse, g)?;
        Ok(vec![Some(dx)])
    }
}
