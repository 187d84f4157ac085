//! Host side of `shaders/pool/pool.wgsl`: max and average pooling over NCHW
//! inputs, forward and backward. Global average pooling is a mean over the
//! spatial axis and needs no kernel of its own.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/pool/pool.wgsl");

/// A square pooling window: size, stride and zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolWindow {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

uniform! {
    pub(crate) struct Params {
        planes: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        k: u32,
        stride: u32,
        pad: u32,
    }
}

/// Checks `[N, C, H, W]` against the window and returns the parameters and
/// the output shape, as PyTorch (floor mode, padding at most half the window).
fn geometry(op: &'static str, x: &[usize], win: PoolWindow) -> Result<(Params, [usize; 4])> {
    let &[n, c, h, w] = x else {
        return Err(Error::shape(op, &[x], "the input must be [N, C, H, W]"));
    };
    let PoolWindow {
        kernel: k,
        stride,
        padding: pad,
    } = win;
    if k == 0 || stride == 0 || 2 * pad > k {
        return Err(Error::invalid(
            op,
            format!(
                "window {k}, stride {stride}, padding {pad}: need k, stride >= 1 and padding <= k / 2"
            ),
        ));
    }
    if h + 2 * pad < k || w + 2 * pad < k {
        return Err(Error::shape(
            op,
            &[x],
            format!("the {k}x{k} window does not fit the padded input (padding {pad})"),
        ));
    }
    let (oh, ow) = (
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    );
    let u = |v: usize| v as u32;
    let p = Params {
        planes: u(n * c),
        h: u(h),
        w: u(w),
        oh: u(oh),
        ow: u(ow),
        k: u(k),
        stride: u(stride),
        pad: u(pad),
    };
    Ok((p, [n, c, oh, ow]))
}

fn launch(entry: &'static str, p: &Params, threads: usize, ts: &[&Tensor]) -> Result<()> {
    let gpu = ts[0].gpu();
    let bindings: Vec<_> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| t.binding(i as u32 + 1))
        .collect();
    let kernel = Kernel::new("pool", SOURCE, entry);
    let grid = gpu.grid((threads as u64).div_ceil(256))?;
    dispatch(gpu, &kernel, &[], p, &bindings, grid)
}

/// Max pooling: the output, and for each output the index `y * W + x` of
/// the winning input in its plane (as f32), which the backward needs.
pub fn max_pool2d(x: &Tensor, win: PoolWindow) -> Result<(Tensor, Tensor)> {
    let (p, shape) = geometry("max_pool2d", x.shape(), win)?;
    let y = Tensor::uninit(x.gpu(), &shape)?;
    let argmax = Tensor::uninit(x.gpu(), &shape)?;
    launch("max_forward", &p, y.numel(), &[x, &y, &argmax])?;
    Ok((y, argmax))
}

/// The input gradient of [`max_pool2d`]: each output's gradient goes to
/// the input that won its window.
pub fn max_pool2d_backward(
    dy: &Tensor,
    argmax: &Tensor,
    x_shape: &[usize],
    win: PoolWindow,
) -> Result<Tensor> {
    let (p, shape) = geometry("max_pool2d_backward", x_shape, win)?;
    if dy.shape() != shape || argmax.shape() != shape {
        return Err(Error::shape(
            "max_pool2d_backward",
            &[dy.shape(), argmax.shape(), &shape],
            "gradient and indices must have the output's shape",
        ));
    }
    let dx = Tensor::uninit(dy.gpu(), x_shape)?;
    launch("max_backward", &p, dx.numel(), &[dy, argmax, &dx])?;
    Ok(dx)
}

/// Average pooling (the padding counts towards the average, as PyTorch's
/// default `count_include_pad=True`).
pub fn avg_pool2d(x: &Tensor, win: PoolWindow) -> Result<Tensor> {
    let (p, shape) = geometry("avg_pool2d", x.shape(), win)?;
    let y = Tensor::uninit(x.gpu(), &shape)?;
    launch("avg_forward", &p, y.numel(), &[x, &y])?;
    Ok(y)
}

/// The input gradient of [`avg_pool2d`].
pub fn avg_pool2d_backward(dy: &Tensor, x_shape: &[usize], win: PoolWindow) -> Result<Tensor> {
    let (p, shape) = geometry("avg_pool2d_backward", x_shape, win)?;
    if dy.shape() != shape {
        return Err(Error::shape(
            "avg_pool2d_backward",
            &[dy.shape(), &shape],
            "the gradient must have the output's shape",
        ));
    }
    let dx = Tensor::uninit(dy.gpu(), x_shape)?;
    launch("avg_backward", &p, dx.numel(), &[dy, &dx])?;
    Ok(dx)
}
