//! The transposed convolution (PyTorch's `conv_transpose2d`): weight
//! `[in, out, kh, kw]`, stride, padding and `output_padding`, the output
//! `[N, out, (H - 1) s - 2 p + kh + output_padding, ...]`.
//!
//! It is the input gradient of the convolution that maps its output back
//! to its input, so it needs no kernel of its own: its forward runs a
//! convolution's input-gradient kernels, its input gradient a
//! convolution's forward, and its weight gradient a convolution's weight
//! gradient (with the roles of input and output swapped). Every
//! convolution variant therefore serves it, chosen per pass as for
//! conv2d (and measured under the same keys).

use crate::error::{Error, Result};
use crate::kernels::conv2d::{
    ConvGeometry, ConvPass, ConvVariant, conv2d_backward_bias, conv2d_backward_input,
    conv2d_backward_weight, conv2d_with,
};
use crate::kernels::elementwise::{BinaryOp, binary};
use crate::tensor::Tensor;

/// The sizes of a transposed convolution, as the convolution it inverts
/// sees them: that convolution maps the output `[n, out, oh, ow]` to the
/// input `[n, in, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposeGeometry {
    pub conv: ConvGeometry,
    pub output_padding: usize,
}

impl TransposeGeometry {
    /// Checks the shapes: `x` `[n, in, h, w]`, `w` `[in, out, kh, kw]`.
    pub fn new(
        x: &[usize],
        w: &[usize],
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Result<TransposeGeometry> {
        let (&[n, cin, h, wd], &[win, out, kh, kw]) = (x, w) else {
            return Err(Error::shape(
                "conv_transpose2d",
                &[x, w],
                "the input must be [N, C_in, H, W] and the weight [C_in, C_out, KH, KW]",
            ));
        };
        if cin != win {
            return Err(Error::shape(
                "conv_transpose2d",
                &[x, w],
                format!("the input has {cin} channels but the weight expects {win}"),
            ));
        }
        if stride == 0 || output_padding >= stride {
            return Err(Error::invalid(
                "conv_transpose2d",
                format!(
                    "the stride must be at least 1 and output_padding below it (stride {stride}, output_padding {output_padding})"
                ),
            ));
        }
        let side = |i: usize, k: usize| {
            ((i.max(1) - 1) * stride + k + output_padding).checked_sub(2 * padding)
        };
        let (Some(oh), Some(ow)) = (side(h, kh), side(wd, kw)) else {
            return Err(Error::shape(
                "conv_transpose2d",
                &[x, w],
                format!("padding {padding} removes the whole output"),
            ));
        };
        if h == 0 || wd == 0 || oh == 0 || ow == 0 {
            return Err(Error::shape("conv_transpose2d", &[x, w], "an empty image"));
        }
        let conv = ConvGeometry::new(&[n, out, oh, ow], &[cin, out, kh, kw], stride, padding)?;
        if conv.oh != h || conv.ow != wd {
            return Err(Error::shape(
                "conv_transpose2d",
                &[x, w],
                "the convolution of the output does not give back the input's size",
            ));
        }
        Ok(TransposeGeometry {
            conv,
            output_padding,
        })
    }

    /// `[n, out, oh, ow]`.
    pub fn output_shape(&self) -> [usize; 4] {
        let g = &self.conv;
        [g.n, g.c, g.h, g.w]
    }

    /// The convolution variant running each pass of this transposed
    /// convolution (its forward is the convolution's input gradient).
    pub fn variant(&self, gpu: &crate::Gpu, pass: ConvPass) -> ConvVariant {
        let conv_pass = match pass {
            ConvPass::Forward => ConvPass::InputGrad,
            ConvPass::InputGrad => ConvPass::Forward,
            ConvPass::WeightGrad => ConvPass::WeightGrad,
        };
        ConvVariant::choose(gpu, &self.conv, conv_pass)
    }
}

/// The transposed convolution of `x` with `w`, plus `bias` `[out]` if
/// given, with the given variant (`None`: chosen per pass).
pub fn conv_transpose2d(
    variant: Option<ConvVariant>,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    x.same_gpu(w, "conv_transpose2d")?;
    let g = TransposeGeometry::new(x.shape(), w.shape(), stride, padding, output_padding)?;
    let v = variant.unwrap_or_else(|| g.variant(x.gpu(), ConvPass::Forward));
    let y = conv2d_backward_input(v, x, w, &g.output_shape(), stride, padding)?;
    match bias {
        Some(b) => {
            x.same_gpu(b, "conv_transpose2d")?;
            if b.shape() != [g.conv.c] {
                return Err(Error::shape(
                    "conv_transpose2d",
                    &[w.shape(), b.shape()],
                    format!("the bias must be [{}]", g.conv.c),
                ));
            }
            binary(&y, &b.reshape(&[g.conv.c, 1, 1])?, BinaryOp::Add)
        }
        None => Ok(y),
    }
}

/// dL/dx of a transposed convolution: the convolution of `dy` with `w`.
pub fn conv_transpose2d_backward_input(
    variant: Option<ConvVariant>,
    dy: &Tensor,
    w: &Tensor,
    g: &TransposeGeometry,
) -> Result<Tensor> {
    let v = variant.unwrap_or_else(|| g.variant(dy.gpu(), ConvPass::InputGrad));
    conv2d_with(v, dy, w, None, g.conv.stride, g.conv.padding)
}

/// dL/dw of a transposed convolution with input `x`: the weight gradient
/// of the convolution whose input is `dy` and whose output gradient is `x`.
pub fn conv_transpose2d_backward_weight(
    variant: Option<ConvVariant>,
    x: &Tensor,
    dy: &Tensor,
    g: &TransposeGeometry,
) -> Result<Tensor> {
    let v = variant.unwrap_or_else(|| g.variant(x.gpu(), ConvPass::WeightGrad));
    let c = &g.conv;
    conv2d_backward_weight(v, dy, x, &[c.o, c.c, c.kh, c.kw], c.stride, c.padding)
}

/// dL/dbias: `dy` summed over everything but its channels.
pub fn conv_transpose2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    conv2d_backward_bias(dy)
}
