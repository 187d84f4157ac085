//! The backward walk: every rule in one `match`, next to its siblings.

use super::{Op, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{BinaryOp, elementwise as ew, matmul as mm, reduce, transpose};
use crate::tensor::Tensor;

/// Gradients of a scalar with respect to the tape's parameters.
#[derive(Debug)]
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// The gradient of `v`, if it is a parameter the loss depends on.
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.grads.get(v.index()).and_then(|g| g.as_ref())
    }
}

fn accumulate(grads: &mut [Option<Tensor>], v: Var, g: Tensor) -> Result<()> {
    let slot = &mut grads[v.index()];
    *slot = Some(match slot.take() {
        Some(prev) => ew::binary(&prev, &g, BinaryOp::Add)?,
        None => g,
    });
    Ok(())
}

/// d(op(A)·op(B)) for C = op(A)·op(B) with upstream gradient `g`:
/// dA = g·op(B)ᵀ (stored as A is: transposed back when A was), and
/// dB = op(A)ᵀ·g likewise. Batched results are summed over the batch where
/// an operand was shared.
fn matmul_grads(a: &Tensor, b: &Tensor, g: &Tensor, ta: bool, tb: bool) -> Result<[Tensor; 2]> {
    let da = if ta {
        mm::matmul(b, g, tb, true)? // [K, M] = op(B)·gᵀ
    } else {
        mm::matmul(g, b, false, !tb)? // [M, K] = g·op(B)ᵀ
    };
    let db = if tb {
        mm::matmul(g, a, true, ta)? // [N, K] = gᵀ·op(A)
    } else {
        mm::matmul(a, g, !ta, false)? // [K, N] = op(A)ᵀ·g
    };
    Ok([
        reduce::sum_to_shape(&da, a.shape())?,
        reduce::sum_to_shape(&db, b.shape())?,
    ])
}

impl Tape {
    /// Walks the tape back from the scalar `loss` and returns the gradients
    /// of every parameter it depends on. Intermediate values are released as
    /// the walk passes them (reading one later gives [`Error::Released`]).
    pub fn backward(&mut self, loss: Var) -> Result<Gradients> {
        self.check(loss)?;
        if !self.grad {
            return Err(Error::invalid(
                "backward",
                "this tape was made with Tape::no_grad and records no gradients",
            ));
        }
        let shape = self.shapes[loss.index()].clone();
        if shape.iter().product::<usize>() != 1 {
            return Err(Error::shape(
                "backward",
                &[&shape],
                "the loss must hold exactly one element",
            ));
        }
        let seed = Tensor::full(&self.gpu, &shape, 1.0)?;
        self.backward_with(loss, seed)
    }

    /// Like [`Tape::backward`] with an explicit upstream gradient for `out`.
    pub fn backward_with(&mut self, out: Var, seed: Tensor) -> Result<Gradients> {
        self.check(out)?;
        if seed.shape() != self.shapes[out.index()].as_slice() {
            return Err(Error::shape(
                "backward",
                &[seed.shape(), &self.shapes[out.index()]],
                "the seed gradient must have the output's shape",
            ));
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; self.values.len()];
        grads[out.index()] = Some(seed);
        let end = self
            .nodes
            .iter()
            .position(|n| n.output == out)
            .map_or(0, |i| i + 1);

        for i in (0..end).rev() {
            let node = &mut self.nodes[i];
            let o = node.output.index();
            let saved = std::mem::take(&mut node.saved);
            // Leaves keep their gradient; everything else is consumed here.
            if node.op == Op::Leaf {
                continue;
            }
            let Some(g) = (if self.is_leaf[o] {
                grads[o].clone()
            } else {
                grads[o].take()
            }) else {
                continue;
            };
            let inputs = node.inputs.clone();
            let op = node.op.clone();
            if o != out.index() {
                self.values[o] = None;
            }
            let needs: Vec<bool> = inputs
                .iter()
                .map(|v| self.requires_grad[v.index()])
                .collect();
            let shape_of = |k: usize| self.shapes[inputs[k].index()].clone();

            let input_grads: Vec<Option<Tensor>> = match op {
                Op::Leaf => unreachable!("leaves are skipped above"),
                // Nothing flows through a stop-gradient (its output never
                // requires a gradient, so the walk does not reach here).
                Op::Detach => vec![None],
                // d(a+b)/da = 1, d(a+b)/db = 1, summed over broadcast dims.
                Op::Add => vec![
                    Some(reduce::sum_to_shape(&g, &shape_of(0))?),
                    Some(reduce::sum_to_shape(&g, &shape_of(1))?),
                ],
                // d(a-b)/db = -1.
                Op::Sub => vec![
                    Some(reduce::sum_to_shape(&g, &shape_of(0))?),
                    Some(reduce::sum_to_shape(&ew::scale(&g, -1.0)?, &shape_of(1))?),
                ],
                // d(ab)/da = b, d(ab)/db = a.
                Op::Mul => {
                    let (a, b) = (&saved[0], &saved[1]);
                    vec![
                        needs[0]
                            .then(|| ew::binary(&g, b, BinaryOp::Mul))
                            .transpose()?
                            .map(|d| reduce::sum_to_shape(&d, &shape_of(0)))
                            .transpose()?,
                        needs[1]
                            .then(|| ew::binary(&g, a, BinaryOp::Mul))
                            .transpose()?
                            .map(|d| reduce::sum_to_shape(&d, &shape_of(1)))
                            .transpose()?,
                    ]
                }
                // d(a/b)/da = 1/b, d(a/b)/db = -a/b².
                Op::Div => {
                    let (a, b) = (&saved[0], &saved[1]);
                    let ga = ew::binary(&g, b, BinaryOp::Div)?;
                    let gb = if needs[1] {
                        let q = ew::binary(&ga, b, BinaryOp::Div)?;
                        let q = ew::binary(&q, a, BinaryOp::Mul)?;
                        Some(reduce::sum_to_shape(&ew::scale(&q, -1.0)?, &shape_of(1))?)
                    } else {
                        None
                    };
                    vec![Some(reduce::sum_to_shape(&ga, &shape_of(0))?), gb]
                }
                // d(sa)/da = s.
                Op::Scale(s) => vec![Some(ew::scale(&g, s)?)],
                // d(a+c)/da = 1.
                Op::AddScalar(_) => vec![Some(g)],
                // d relu(x)/dx = [x > 0].
                Op::Relu => vec![Some(ew::binary(&g, &saved[0], BinaryOp::ReluGrad)?)],
                // d exp(x)/dx = exp(x) (saved output).
                Op::Exp => vec![Some(ew::binary(&g, &saved[0], BinaryOp::Mul)?)],
                // d ln(x)/dx = 1/x.
                Op::Log => vec![Some(ew::binary(&g, &saved[0], BinaryOp::Div)?)],
                // d sqrt(x)/dx = 1 / (2 sqrt(x)) (saved output).
                Op::Sqrt => vec![Some(ew::binary(&g, &saved[0], BinaryOp::SqrtGrad)?)],
                // d x²/dx = 2x.
                Op::Square => {
                    let two_x = ew::scale(&saved[0], 2.0)?;
                    vec![Some(ew::binary(&g, &two_x, BinaryOp::Mul)?)]
                }
                // Each input element receives the gradient of its sum.
                Op::Sum { axis } | Op::Mean { axis } => {
                    let input = shape_of(0);
                    let mut kept = input.clone();
                    kept[axis] = 1;
                    let g = if let Op::Mean { .. } = op {
                        ew::scale(&g, 1.0 / input[axis] as f32)?
                    } else {
                        g
                    };
                    vec![Some(ew::expand(&g.reshape(&kept)?, &input)?)]
                }
                Op::SumAll | Op::MeanAll => {
                    let input = shape_of(0);
                    let n: usize = input.iter().product();
                    let g = if op == Op::MeanAll {
                        ew::scale(&g, 1.0 / n as f32)?
                    } else {
                        g
                    };
                    vec![Some(ew::expand(&g, &input)?)]
                }
                Op::Transpose => vec![Some(transpose::transpose(&g)?)],
                Op::Matmul { trans_a, trans_b } => {
                    let [da, db] = matmul_grads(&saved[0], &saved[1], &g, trans_a, trans_b)?;
                    vec![Some(da), Some(db)]
                }
                Op::Reshape => vec![Some(g.reshape(&shape_of(0))?)],
                Op::Conv2d { .. }
                | Op::BatchNorm { .. }
                | Op::LayerNorm
                | Op::MaxPool2d(_)
                | Op::AvgPool2d(_)
                | Op::Gelu
                | Op::Sigmoid => super::layers::backward(&op, &saved, &g, &needs, &shape_of(0))?,
                // Fused ops: each rule lives next to its forward.
                Op::Custom(custom) => {
                    let grads = custom.rule().backward(&saved, &g, &needs)?;
                    if grads.len() != inputs.len() {
                        return Err(Error::invalid(
                            "backward",
                            format!(
                                "{custom:?} returned {} gradients for {} inputs",
                                grads.len(),
                                inputs.len()
                            ),
                        ));
                    }
                    grads
                }
            };
            drop(saved);
            for ((v, gi), need) in inputs.iter().zip(input_grads).zip(needs) {
                if let (Some(gi), true) = (gi, need) {
                    accumulate(&mut grads, *v, gi)?;
                }
            }
        }
        // Only leaves (parameters) keep their gradient.
        for (i, g) in grads.iter_mut().enumerate() {
            if !(self.is_leaf[i] && self.requires_grad[i]) {
                *g = None;
            }
        }
        Ok(Gradients { grads })
    }
}
