//! The autodiff tape: an explicit list of nodes.
//!
//! Each forward call runs its kernel at once and appends a [`Node`] `{ op,
//! inputs, output, saved }`. [`Tape::backward`] walks the list in reverse
//! with one `match` on the op (in `backward.rs`), accumulates gradients per
//! variable, and hands each node's saved tensors and each intermediate value
//! back to the buffer pool as soon as they have been consumed. There is no
//! sorting: the tape prints as a list of its ops.
//!
//! The core ops are the generic ones (elementwise, reductions, matmul,
//! layers). A fused op defined elsewhere (the losses in `loss`, say) brings
//! its own backward rule as a [`CustomOp`] and is recorded with
//! [`Tape::record_custom`]: it adds no variant to [`Op`], and the tape
//! imports nothing above the kernels.
//!
//! A tape made with [`Tape::no_grad`] records forwards that keep nothing
//! for a backward: its parameters need no gradient, so no node saves a
//! tensor, and the modules hand each activation back to the pool as soon
//! as the next layer has read it ([`Tape::release`]). Evaluation and the
//! forwards of an EMA target run on one.

mod backward;
mod dist;
mod layers;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::pool::PoolWindow;
use crate::kernels::{
    BinaryOp, ConvVariant, UnaryOp, elementwise as ew, matmul as mm, reduce, transpose,
};
use crate::tensor::Tensor;

pub use backward::Gradients;
pub use layers::BatchNormState;

/// A value recorded on a tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var {
    tape: u32,
    index: u32,
}

impl Var {
    /// The position of the value on its tape.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// What produced a value. Parameters of the op live here; tensors it needs for
/// its backward rule live in the node's `saved` list.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A value put on the tape by the user: a parameter or a constant.
    Leaf,
    Add,
    Sub,
    Mul,
    Div,
    Scale(f32),
    AddScalar(f32),
    Relu,
    Exp,
    Log,
    Sqrt,
    Square,
    Sum {
        axis: usize,
    },
    Mean {
        axis: usize,
    },
    SumAll,
    MeanAll,
    Transpose,
    Matmul {
        trans_a: bool,
        trans_b: bool,
    },
    Reshape,
    /// Inputs `[x, w]` or `[x, w, bias]`; saved `[x, w]`.
    Conv2d {
        stride: usize,
        padding: usize,
        /// `None`: the default variant of each pass (forward, input
        /// gradient, weight gradient), chosen per pass.
        variant: Option<ConvVariant>,
    },
    /// Inputs `[x]` or `[x, gamma, beta]`; saved `[x, mean, invstd]` (+
    /// gamma, and beta with `relu`). With `relu`, the op is
    /// `relu(batch_norm(x))` in batch norm's passes.
    BatchNorm {
        train: bool,
        relu: bool,
    },
    /// Inputs `[x, gamma, beta]`; saved `[x, gamma, mean, rstd]`.
    LayerNorm,
    /// Saved: the index of each window's winner.
    MaxPool2d(PoolWindow),
    AvgPool2d(PoolWindow),
    Gelu,
    Sigmoid,
    /// The input's value, with no gradient flowing back to it
    /// (stop-gradient).
    Detach,
    /// A fused op that carries its own backward rule.
    Custom(Custom),
}

/// The backward rule of a fused op recorded with [`Tape::record_custom`]:
/// the op's kernels live next to its forward (the losses in `loss`, say),
/// not in the tape.
pub trait CustomOp: fmt::Debug + Send + Sync {
    /// The gradients of the op's inputs, in their order (`None` where an
    /// input needs none: `needs[i]` is false when no parameter depends on
    /// input `i`). `saved` holds the tensors the forward handed to
    /// [`Tape::record_custom`]; `g` is the gradient of the output.
    fn backward(&self, saved: &[Tensor], g: &Tensor, needs: &[bool])
    -> Result<Vec<Option<Tensor>>>;
}

/// A recorded [`CustomOp`]. Two are equal when they are the same recording.
#[derive(Clone)]
pub struct Custom(Arc<dyn CustomOp>);

impl Custom {
    /// The op's backward rule.
    pub fn rule(&self) -> &dyn CustomOp {
        self.0.as_ref()
    }
}

impl fmt::Debug for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Custom {
    fn eq(&self, other: &Custom) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One recorded operation.
#[derive(Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<Var>,
    pub output: Var,
    /// Tensors the backward rule reads, released once it has run.
    pub saved: Vec<Tensor>,
}

/// The tape. Values are kept until [`Tape::backward`] consumes them or the
/// tape drops; leaves (parameters and constants) are never released by it.
pub struct Tape {
    id: u32,
    gpu: Gpu,
    /// False on a [`Tape::no_grad`] tape: parameters need no gradient.
    grad: bool,
    nodes: Vec<Node>,
    values: Vec<Option<Tensor>>,
    shapes: Vec<Vec<usize>>,
    requires_grad: Vec<bool>,
    is_leaf: Vec<bool>,
    /// The group a distributed step spans: gathered rows and synchronised
    /// batch norm communicate through it (see `dist.rs`).
    dist: Option<crate::dist::Dist>,
}

static NEXT_TAPE: AtomicU32 = AtomicU32::new(1);

impl Tape {
    /// An empty tape for tensors on `gpu`.
    pub fn new(gpu: &Gpu) -> Tape {
        Tape {
            id: NEXT_TAPE.fetch_add(1, Ordering::Relaxed),
            gpu: gpu.clone(),
            grad: true,
            nodes: Vec::new(),
            values: Vec::new(),
            shapes: Vec::new(),
            requires_grad: Vec::new(),
            is_leaf: Vec::new(),
            dist: None,
        }
    }

    /// A tape for forwards only: [`Tape::param`] records its tensor as a
    /// constant, so no node saves anything for a backward, and
    /// [`Tape::backward`] is an error. Values stay readable until the tape
    /// drops.
    pub fn no_grad(gpu: &Gpu) -> Tape {
        Tape {
            grad: false,
            ..Tape::new(gpu)
        }
    }

    /// False for a [`Tape::no_grad`] tape.
    pub fn records_gradients(&self) -> bool {
        self.grad
    }

    /// The device of this tape.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The recorded nodes, in execution order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn push_value(&mut self, t: Tensor, requires_grad: bool, leaf: bool) -> Var {
        let v = Var {
            tape: self.id,
            index: self.values.len() as u32,
        };
        self.shapes.push(t.shape().to_vec());
        self.values.push(Some(t));
        self.requires_grad.push(requires_grad);
        self.is_leaf.push(leaf);
        v
    }

    fn leaf(&mut self, t: Tensor, requires_grad: bool) -> Result<Var> {
        if !std::sync::Arc::ptr_eq(&t.gpu().inner, &self.gpu.inner) {
            return Err(Error::invalid(
                "Tape::leaf",
                "the tensor lives on another device",
            ));
        }
        let v = self.push_value(t, requires_grad, true);
        self.nodes.push(Node {
            op: Op::Leaf,
            inputs: vec![],
            output: v,
            saved: vec![],
        });
        Ok(v)
    }

    /// Records a trainable tensor: [`Tape::backward`] returns its gradient
    /// (on a [`Tape::no_grad`] tape, a constant).
    pub fn param(&mut self, t: &Tensor) -> Result<Var> {
        self.leaf(t.clone(), self.grad)
    }

    /// Records a tensor that needs no gradient (data, targets).
    pub fn constant(&mut self, t: &Tensor) -> Result<Var> {
        self.leaf(t.clone(), false)
    }

    /// True if `v` was recorded on this tape.
    pub fn owns(&self, v: Var) -> bool {
        v.tape == self.id && v.index() < self.values.len()
    }

    fn check(&self, v: Var) -> Result<()> {
        if v.tape != self.id || v.index() >= self.values.len() {
            return Err(Error::invalid(
                "Tape",
                format!("{v:?} belongs to another tape"),
            ));
        }
        Ok(())
    }

    /// The value of `v`, or [`Error::Released`] once backward has freed it.
    pub fn value(&self, v: Var) -> Result<&Tensor> {
        self.check(v)?;
        self.values[v.index()]
            .as_ref()
            .ok_or_else(|| Error::Released(format!("tape value {} ({:?})", v.index, self.op_of(v))))
    }

    /// The shape of `v` (known even after its value was released).
    pub fn shape(&self, v: Var) -> Result<&[usize]> {
        self.check(v)?;
        Ok(&self.shapes[v.index()])
    }

    fn op_of(&self, v: Var) -> Option<&Op> {
        self.nodes.iter().find(|n| n.output == v).map(|n| &n.op)
    }

    /// Appends a node for `out`, computed from `inputs`.
    pub(crate) fn record(
        &mut self,
        op: Op,
        inputs: &[Var],
        out: Tensor,
        saved: Vec<Tensor>,
    ) -> Var {
        let requires_grad = inputs.iter().any(|v| self.requires_grad[v.index()]);
        // A node that no gradient flows through needs nothing saved.
        let saved = if requires_grad { saved } else { vec![] };
        let output = self.push_value(out, requires_grad, false);
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            output,
            saved,
        });
        output
    }

    /// Appends a fused op whose backward rule is `op` itself: `out` was
    /// computed from `inputs` by the caller's kernels, and `saved` is what
    /// [`CustomOp::backward`] will read (dropped at once when no input needs
    /// a gradient).
    pub fn record_custom(
        &mut self,
        op: impl CustomOp + 'static,
        inputs: &[Var],
        out: Tensor,
        saved: Vec<Tensor>,
    ) -> Result<Var> {
        for &v in inputs {
            self.check(v)?;
        }
        Ok(self.record(Op::Custom(Custom(Arc::new(op))), inputs, out, saved))
    }

    /// Says the caller will not read `v` again. On a [`Tape::no_grad`] tape
    /// its value goes back to the pool at once (unless `v` is a leaf: the
    /// caller's parameters and inputs stay), so a forward's memory does not
    /// grow with its depth; reading it later is [`Error::Released`]. On a
    /// recording tape nothing changes: the backward frees values as it
    /// passes them.
    pub fn release(&mut self, v: Var) -> Result<()> {
        self.check(v)?;
        if !self.grad && !self.is_leaf[v.index()] {
            self.values[v.index()] = None;
        }
        Ok(())
    }

    /// The value of `a`, through which no gradient flows back (stop-gradient).
    pub fn detach(&mut self, a: Var) -> Result<Var> {
        let t = self.value(a)?.clone();
        let v = self.push_value(t, false, false);
        self.nodes.push(Node {
            op: Op::Detach,
            inputs: vec![a],
            output: v,
            saved: vec![],
        });
        Ok(v)
    }

    fn binary(&mut self, op: Op, a: Var, b: Var, kernel: BinaryOp, save: bool) -> Result<Var> {
        let (ta, tb) = (self.value(a)?.clone(), self.value(b)?.clone());
        let out = ew::binary(&ta, &tb, kernel)?;
        let saved = if save { vec![ta, tb] } else { vec![] };
        Ok(self.record(op, &[a, b], out, saved))
    }

    /// `a + b`, broadcasting.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Op::Add, a, b, BinaryOp::Add, false)
    }

    /// `a - b`, broadcasting.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Op::Sub, a, b, BinaryOp::Sub, false)
    }

    /// `a * b` elementwise, broadcasting.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Op::Mul, a, b, BinaryOp::Mul, true)
    }

    /// `a / b` elementwise, broadcasting.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Op::Div, a, b, BinaryOp::Div, true)
    }

    /// `s * a`.
    pub fn scale(&mut self, a: Var, s: f32) -> Result<Var> {
        let out = ew::scale(self.value(a)?, s)?;
        Ok(self.record(Op::Scale(s), &[a], out, vec![]))
    }

    /// `a + c`.
    pub fn add_scalar(&mut self, a: Var, c: f32) -> Result<Var> {
        let out = ew::add_scalar(self.value(a)?, c)?;
        Ok(self.record(Op::AddScalar(c), &[a], out, vec![]))
    }

    fn unary(&mut self, op: Op, a: Var, kernel: UnaryOp, save_output: bool) -> Result<Var> {
        let x = self.value(a)?.clone();
        let out = ew::unary(&x, kernel)?;
        let saved = vec![if save_output { out.clone() } else { x }];
        Ok(self.record(op, &[a], out, saved))
    }

    /// `max(a, 0)`.
    pub fn relu(&mut self, a: Var) -> Result<Var> {
        self.unary(Op::Relu, a, UnaryOp::Relu, false)
    }

    /// `exp(a)`.
    pub fn exp(&mut self, a: Var) -> Result<Var> {
        self.unary(Op::Exp, a, UnaryOp::Exp, true)
    }

    /// `ln(a)`.
    pub fn log(&mut self, a: Var) -> Result<Var> {
        self.unary(Op::Log, a, UnaryOp::Log, false)
    }

    /// `sqrt(a)`.
    pub fn sqrt(&mut self, a: Var) -> Result<Var> {
        self.unary(Op::Sqrt, a, UnaryOp::Sqrt, true)
    }

    /// `a * a`.
    pub fn square(&mut self, a: Var) -> Result<Var> {
        self.unary(Op::Square, a, UnaryOp::Square, false)
    }

    /// The sum over `axis` (removed from the shape).
    pub fn sum(&mut self, a: Var, axis: usize) -> Result<Var> {
        let out = reduce::sum_axis(self.value(a)?, axis)?;
        Ok(self.record(Op::Sum { axis }, &[a], out, vec![]))
    }

    /// The mean over `axis` (removed from the shape).
    pub fn mean(&mut self, a: Var, axis: usize) -> Result<Var> {
        let out = reduce::mean_axis(self.value(a)?, axis)?;
        Ok(self.record(Op::Mean { axis }, &[a], out, vec![]))
    }

    /// The sum of all elements, shape `[]`.
    pub fn sum_all(&mut self, a: Var) -> Result<Var> {
        let out = reduce::sum_all(self.value(a)?)?;
        Ok(self.record(Op::SumAll, &[a], out, vec![]))
    }

    /// The mean of all elements, shape `[]`.
    pub fn mean_all(&mut self, a: Var) -> Result<Var> {
        let out = reduce::mean_all(self.value(a)?)?;
        Ok(self.record(Op::MeanAll, &[a], out, vec![]))
    }

    /// Swaps the last two dimensions.
    pub fn transpose(&mut self, a: Var) -> Result<Var> {
        let out = transpose::transpose(self.value(a)?)?;
        Ok(self.record(Op::Transpose, &[a], out, vec![]))
    }

    /// `op(a) · op(b)` with the device's default matmul variant.
    pub fn matmul(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let (ta, tb) = (self.value(a)?.clone(), self.value(b)?.clone());
        let out = mm::matmul(&ta, &tb, trans_a, trans_b)?;
        Ok(self.record(Op::Matmul { trans_a, trans_b }, &[a, b], out, vec![ta, tb]))
    }

    /// The same data under another shape.
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let out = self.value(a)?.reshape(shape)?;
        Ok(self.record(Op::Reshape, &[a], out, vec![]))
    }
}

impl fmt::Display for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            let inputs: Vec<String> = n.inputs.iter().map(|v| format!("%{}", v.index)).collect();
            writeln!(
                f,
                "%{} = {:?}({}) : {:?}",
                n.output.index,
                n.op,
                inputs.join(", "),
                self.shapes[n.output.index()]
            )?;
        }
        Ok(())
    }
}
