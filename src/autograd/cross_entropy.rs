//! Softmax cross-entropy on the tape: one fused node whose backward reads
//! the log-sum-exp its forward saved.

use super::{Op, Tape, Var};
use crate::error::Result;
use crate::kernels::cross_entropy as ce;
use crate::tensor::Tensor;

impl Tape {
    /// The mean over rows of `-log softmax(logits)[label]` for `[rows,
    /// classes]` logits and `labels` `[rows]` holding class indices as f32
    /// (PyTorch's `cross_entropy` with mean reduction). The labels get no
    /// gradient; an index outside `0..classes` selects no class.
    pub fn cross_entropy(&mut self, logits: Var, labels: &Tensor) -> Result<Var> {
        let x = self.value(logits)?.clone();
        let (loss, lse) = ce::cross_entropy(&x, labels)?;
        Ok(self.record(
            Op::CrossEntropy,
            &[logits],
            loss,
            vec![x, labels.clone(), lse],
        ))
    }
}

/// d loss / d logits = g (softmax - onehot) / rows, from saved `[logits,
/// labels, lse]`.
pub(super) fn backward(saved: &[Tensor], g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let dx = ce::cross_entropy_backward(&saved[0], &saved[1], &saved[2], g)?;
    Ok(vec![Some(dx)])
}
