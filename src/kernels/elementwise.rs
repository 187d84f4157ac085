//! Host side of `shaders/elementwise/elementwise.wgsl`: unary and binary
//! elementwise ops with NumPy-style broadcasting.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::{MAX_RANK, Tensor};

const SOURCE: &str = include_str!("../../shaders/elementwise/elementwise.wgsl");
const UNARY: Kernel = Kernel::new("elementwise", SOURCE, "unary");
const BINARY: Kernel = Kernel::new("elementwise", SOURCE, "binary");

/// Ops of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Relu = 1,
    Exp = 2,
    Log = 3,
    Sqrt = 4,
    Square = 5,
    /// `x Φ(x)` with Φ the standard normal CDF (PyTorch's default gelu).
    Gelu = 6,
    /// `1 / (1 + e^-x)`.
    Sigmoid = 7,
}

/// Ops of two operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    /// `x * (y > 0)`: the backward of relu, with `y` the relu's input.
    ReluGrad = 4,
    /// `0.5 * x / y`: the backward of sqrt, with `y` the sqrt's output.
    SqrtGrad = 5,
    /// `x (Φ(y) + y φ(y))`: the backward of gelu, with `y` the gelu's input.
    GeluGrad = 6,
    /// `x y (1 - y)`: the backward of sigmoid, with `y` the sigmoid's output.
    SigmoidGrad = 7,
}

uniform! {
    pub(crate) struct Params {
        n: u32,
        alpha: f32,
        beta: f32,
        _pad: u32,
        shape: [u32; 4],
        stride_x: [u32; 4],
        stride_y: [u32; 4],
    }
}

/// The shape two operands broadcast to (NumPy rules: align from the right;
/// each pair of dimensions is equal or one of them is 1).
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(
                    op,
                    &[a, b],
                    format!("dimension {i} differs ({da} vs {db}) and neither is 1"),
                ));
            }
        };
    }
    Ok(out)
}

/// Pads `shape` to 4 dimensions on the left.
fn pad4(shape: &[usize]) -> [usize; 4] {
    let mut out = [1; 4];
    out[4 - shape.len()..].copy_from_slice(shape);
    out
}

/// Strides (in elements) that read an operand of `shape` over the output:
/// 0 along its size-1 dimensions, which repeats it where it is broadcast
/// (and is irrelevant where the output has size 1 too).
fn strides(shape: &[usize]) -> [u32; 4] {
    let s = pad4(shape);
    let mut strides = [0u32; 4];
    let mut step = 1usize;
    for d in (0..4).rev() {
        strides[d] = if s[d] == 1 { 0 } else { step as u32 };
        step *= s[d];
    }
    strides
}

fn params(out: &[usize], x: &[usize], y: &[usize], alpha: f32, beta: f32) -> Params {
    let o = pad4(out);
    Params {
        n: out.iter().product::<usize>() as u32,
        alpha,
        beta,
        _pad: 0,
        shape: o.map(|d| d as u32),
        stride_x: strides(x),
        stride_y: strides(y),
    }
}

fn launch(
    kernel: &Kernel,
    op: u32,
    p: &Params,
    out: &Tensor,
    inputs: &[&Tensor],
    broadcast: bool,
) -> Result<()> {
    let gpu = out.gpu();
    let mut bindings: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| t.binding(i as u32 + 1))
        .collect();
    bindings.push(out.binding(3));
    let grid = gpu.grid((p.n as u64).div_ceil(256))?;
    dispatch(
        gpu,
        kernel,
        &[("OP", op as f64), ("BROADCAST", broadcast as u32 as f64)],
        p,
        &bindings,
        grid,
    )
}

/// `alpha * x + beta`, elementwise.
pub fn affine(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    let out = Tensor::uninit(x.gpu(), x.shape())?;
    let p = params(x.shape(), x.shape(), x.shape(), alpha, beta);
    launch(&UNARY, 0, &p, &out, &[x], false)?;
    Ok(out)
}

/// `s * x`.
pub fn scale(x: &Tensor, s: f32) -> Result<Tensor> {
    affine(x, s, 0.0)
}

/// `x + c`.
pub fn add_scalar(x: &Tensor, c: f32) -> Result<Tensor> {
    affine(x, 1.0, c)
}

/// `f(x)` elementwise.
pub fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let out = Tensor::uninit(x.gpu(), x.shape())?;
    let p = params(x.shape(), x.shape(), x.shape(), 1.0, 0.0);
    launch(&UNARY, op as u32, &p, &out, &[x], false)?;
    Ok(out)
}

/// Repeats `x` along its size-1 (or missing leading) dimensions to `shape`.
pub fn expand(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let out_shape = broadcast_shape("expand", x.shape(), shape)?;
    if out_shape != shape || shape.len() > MAX_RANK {
        return Err(Error::shape(
            "expand",
            &[x.shape(), shape],
            "the tensor does not broadcast to the target shape",
        ));
    }
    let out = Tensor::uninit(x.gpu(), shape)?;
    let p = params(shape, x.shape(), shape, 1.0, 0.0);
    launch(&UNARY, 0, &p, &out, &[x], true)?;
    Ok(out)
}

/// `g(a, b)` elementwise, broadcasting `a` and `b` to a common shape.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    const NAMES: [&str; 8] = [
        "add",
        "sub",
        "mul",
        "div",
        "relu_grad",
        "sqrt_grad",
        "gelu_grad",
        "sigmoid_grad",
    ];
    let name = NAMES[op as usize];
    a.same_gpu(b, name)?;
    let shape = broadcast_shape(name, a.shape(), b.shape())?;
    let out = Tensor::uninit(a.gpu(), &shape)?;
    let p = params(&shape, a.shape(), b.shape(), 1.0, 0.0);
    let broadcast = a.shape() != shape.as_slice() || b.shape() != shape.as_slice();
    launch(&BINARY, op as u32, &p, &out, &[a, b], broadcast)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape("t", &[3, 4], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shape("t", &[3, 1], &[1, 4]).unwrap(), vec![3, 4]);
        assert_eq!(
            broadcast_shape("t", &[2, 3, 4], &[3, 1]).unwrap(),
            vec![2, 3, 4]
        );
        assert!(broadcast_shape("t", &[3, 4], &[3]).is_err());
        assert_eq!(strides(&[4]), [0, 0, 0, 1]);
        assert_eq!(strides(&[3, 1]), [0, 0, 1, 0]);
        assert_eq!(strides(&[3, 4]), [0, 0, 4, 1]);
    }
}
