//! `nn.ConvTranspose2d`: the upsampling layer of the decoders. On the tape
//! it is a custom op whose rules call the convolution kernels (see
//! `kernels::conv_transpose`): the tape itself knows nothing of it.

use super::{Entry, Init, Param, join};
use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::conv_transpose::{self as kernel, TransposeGeometry};
use crate::kernels::conv2d::ConvVariant;
use crate::tensor::Tensor;

/// Records PyTorch's `conv_transpose2d(x, w, bias, stride, padding,
/// output_padding)` for `x` `[N, in, H, W]`, `w` `[in, out, kh, kw]` and an
/// optional `bias` `[out]`, each pass with the variant measured for it (or
/// `variant` for all).
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    tape: &mut Tape,
    x: Var,
    w: Var,
    bias: Option<Var>,
    stride: usize,
    padding: usize,
    output_padding: usize,
    variant: Option<ConvVariant>,
) -> Result<Var> {
    let (tx, tw) = (tape.value(x)?.clone(), tape.value(w)?.clone());
    let tb = bias.map(|b| tape.value(b).cloned()).transpose()?;
    let g = TransposeGeometry::new(tx.shape(), tw.shape(), stride, padding, output_padding)?;
    let y = kernel::conv_transpose2d(
        variant,
        &tx,
        &tw,
        tb.as_ref(),
        stride,
        padding,
        output_padding,
    )?;
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    tape.record_custom(Transposed { g, variant }, &inputs, y, vec![tx, tw])
}

#[derive(Debug)]
struct Transposed {
    g: TransposeGeometry,
    variant: Option<ConvVariant>,
}

impl CustomOp for Transposed {
    /// `saved` is `[x, w]`: dx is the convolution of dy with w, dw the
    /// convolution weight gradient with the roles of x and dy swapped, and
    /// the bias gradient dy summed per channel.
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let [x, w] = saved else {
            return Err(Error::invalid(
                "conv_transpose2d backward",
                "expected 2 saved tensors",
            ));
        };
        let mut grads = vec![
            needs[0]
                .then(|| kernel::conv_transpose2d_backward_input(self.variant, g, w, &self.g))
                .transpose()?,
            needs[1]
                .then(|| kernel::conv_transpose2d_backward_weight(self.variant, x, g, &self.g))
                .transpose()?,
        ];
        if needs.len() == 3 {
            grads.push(
                needs[2]
                    .then(|| kernel::conv_transpose2d_backward_bias(g))
                    .transpose()?,
            );
        }
        Ok(grads)
    }
}

/// `nn.ConvTranspose2d` with square kernel, stride and padding: weight
/// `[in, out, k, k]`, optional bias `[out]`, PyTorch's initialisation.
#[derive(Debug)]
pub struct ConvTranspose2d {
    pub weight: Param,
    pub bias: Option<Param>,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

impl ConvTranspose2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        init: &mut Init,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<ConvTranspose2d> {
        // PyTorch's fan-in for [in, out, k, k] is out * k * k (dimension 1).
        let weight =
            Param::new(init.kaiming_uniform(gpu, &[in_channels, out_channels, kernel, kernel])?);
        let fan_in = (out_channels * kernel * kernel).max(1) as f32;
        let bias = if bias {
            Some(Param::new(init.uniform(
                gpu,
                &[out_channels],
                1.0 / fan_in.sqrt(),
            )?))
        } else {
            None
        };
        Ok(ConvTranspose2d {
            weight,
            bias,
            stride,
            padding,
            output_padding: 0,
        })
    }

    pub fn forward(&mut self, tape: &mut Tape, x: Var) -> Result<Var> {
        let w = self.weight.register(tape)?;
        let b = self.bias.as_mut().map(|b| b.register(tape)).transpose()?;
        conv_transpose2d(
            tape,
            x,
            w,
            b,
            self.stride,
            self.padding,
            self.output_padding,
            None,
        )
    }

    pub fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        out.push((join(prefix, "weight"), Entry::Param(&self.weight)));
        if let Some(b) = &self.bias {
            out.push((join(prefix, "bias"), Entry::Param(b)));
        }
    }
}
