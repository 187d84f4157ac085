//! Network layers on the tape: convolution, normalisation, pooling and the
//! activations beyond relu. Each forward records one node; the backward
//! rules live in [`backward`], called by one arm of the walk in `backward.rs`.

use super::{Op, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::conv2d::{self as conv, ConvGeometry, ConvPass, ConvVariant};
use crate::kernels::norm::{self, BatchStats};
use crate::kernels::pool::{self, PoolWindow};
use crate::kernels::{BinaryOp, UnaryOp, elementwise as ew};
use crate::tensor::Tensor;

/// The state a batch norm keeps between steps: running estimates (updated
/// in place in training mode) and the hyper-parameters PyTorch uses.
#[derive(Clone, Debug)]
pub struct BatchNormState<'a> {
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub momentum: f32,
    pub eps: f32,
}

impl Tape {
    /// 2-D convolution (PyTorch's `conv2d`) with the default variant for its
    /// geometry, chosen separately for the forward and for each gradient;
    /// `bias`, if given, is `[O]`.
    pub fn conv2d(
        &mut self,
        x: Var,
        w: Var,
        bias: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        self.conv2d_inner(None, x, w, bias, stride, padding)
    }

    /// [`Tape::conv2d`] with an explicit kernel variant (forward and backward).
    pub fn conv2d_with(
        &mut self,
        variant: ConvVariant,
        x: Var,
        w: Var,
        bias: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        self.conv2d_inner(Some(variant), x, w, bias, stride, padding)
    }

    fn conv2d_inner(
        &mut self,
        variant: Option<ConvVariant>,
        x: Var,
        w: Var,
        bias: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        let (tx, tw) = (self.value(x)?.clone(), self.value(w)?.clone());
        let tb = bias.map(|b| self.value(b).cloned()).transpose()?;
        let forward = match variant {
            Some(v) => v,
            None => {
                let g = ConvGeometry::new(tx.shape(), tw.shape(), stride, padding)?;
                ConvVariant::choose(&self.gpu, &g, ConvPass::Forward)
            }
        };
        let out = conv::conv2d_with(forward, &tx, &tw, tb.as_ref(), stride, padding)?;
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let op = Op::Conv2d {
            stride,
            padding,
            variant,
        };
        Ok(self.record(op, &inputs, out, vec![tx, tw]))
    }

    /// Batch normalisation of `[N, C]` or `[N, C, H, W]` per channel, with
    /// `affine = Some((gamma, beta))` or without. Training mode uses batch
    /// statistics and updates the running estimates in `state`; eval mode
    /// uses the running estimates.
    pub fn batch_norm(
        &mut self,
        x: Var,
        affine: Option<(Var, Var)>,
        state: &BatchNormState<'_>,
        train: bool,
    ) -> Result<Var> {
        if let Some(d) = self.spread().filter(|d| train && d.sync_bn) {
            return self.sync_batch_norm(x, affine, state, d);
        }
        self.batch_norm_op(x, affine, state, train, false)
    }

    /// `relu(batch_norm(x))` as one op: the values and gradients of
    /// [`Tape::batch_norm`] then [`Tape::relu`], in batch norm's passes
    /// alone, without keeping the normalised activation. Synchronised
    /// batch norm (under several ranks) runs the two ops.
    pub fn batch_norm_relu(
        &mut self,
        x: Var,
        affine: Option<(Var, Var)>,
        state: &BatchNormState<'_>,
        train: bool,
    ) -> Result<Var> {
        if let Some(d) = self.spread().filter(|d| train && d.sync_bn) {
            let b = self.sync_batch_norm(x, affine, state, d)?;
            let r = self.relu(b)?;
            self.release(b)?;
            return Ok(r);
        }
        self.batch_norm_op(x, affine, state, train, true)
    }

    fn batch_norm_op(
        &mut self,
        x: Var,
        affine: Option<(Var, Var)>,
        state: &BatchNormState<'_>,
        train: bool,
        relu: bool,
    ) -> Result<Var> {
        let tx = self.value(x)?.clone();
        let params = affine
            .map(|(g, b)| Ok::<_, Error>((self.value(g)?.clone(), self.value(b)?.clone())))
            .transpose()?;
        let forward = if relu {
            norm::batch_norm_relu
        } else {
            norm::batch_norm
        };
        let (y, stats) = forward(
            &tx,
            params.as_ref().map(|(g, b)| (g, b)),
            state.running_mean,
            state.running_var,
            train,
            state.momentum,
            state.eps,
        )?;
        let mut inputs = vec![x];
        let mut saved = vec![tx, stats.mean, stats.invstd];
        if let (Some((g, b)), Some((tg, tb))) = (affine, params) {
            inputs.extend([g, b]);
            saved.push(tg);
            if relu {
                saved.push(tb);
            }
        }
        Ok(self.record(Op::BatchNorm { train, relu }, &inputs, y, saved))
    }

    /// Layer normalisation over the last dimension with `gamma` and `beta` `[D]`.
    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: f32) -> Result<Var> {
        let tx = self.value(x)?.clone();
        let tg = self.value(gamma)?.clone();
        let (y, mean, rstd) = norm::layer_norm(&tx, &tg, self.value(beta)?, eps)?;
        let saved = vec![tx, tg, mean, rstd];
        Ok(self.record(Op::LayerNorm, &[x, gamma, beta], y, saved))
    }

    /// Max pooling over square windows (PyTorch's `max_pool2d`).
    pub fn max_pool2d(&mut self, x: Var, window: PoolWindow) -> Result<Var> {
        let (y, argmax) = pool::max_pool2d(self.value(x)?, window)?;
        Ok(self.record(Op::MaxPool2d(window), &[x], y, vec![argmax]))
    }

    /// Average pooling over square windows (PyTorch's `avg_pool2d`).
    pub fn avg_pool2d(&mut self, x: Var, window: PoolWindow) -> Result<Var> {
        let y = pool::avg_pool2d(self.value(x)?, window)?;
        Ok(self.record(Op::AvgPool2d(window), &[x], y, vec![]))
    }

    /// `[N, C, H, W]` averaged over H and W to `[N, C]`.
    pub fn global_avg_pool(&mut self, x: Var) -> Result<Var> {
        let &[n, c, h, w] = self.shape(x)? else {
            return Err(Error::shape(
                "global_avg_pool",
                &[self.shape(x)?],
                "the input must be [N, C, H, W]",
            ));
        };
        let flat = self.reshape(x, &[n, c, h * w])?;
        let pooled = self.mean(flat, 2)?;
        self.release(flat)?;
        Ok(pooled)
    }

    /// `x · wᵀ + b` for `x` `[B, in]`, `w` `[out, in]` (PyTorch's layout) and
    /// an optional `b` `[out]`.
    pub fn linear(&mut self, x: Var, w: Var, bias: Option<Var>) -> Result<Var> {
        let y = self.matmul(x, w, false, true)?;
        match bias {
            Some(b) => {
                let out = self.add(y, b)?;
                self.release(y)?;
                Ok(out)
            }
            None => Ok(y),
        }
    }

    /// `x Φ(x)`, Φ the standard normal CDF (PyTorch's default gelu).
    pub fn gelu(&mut self, x: Var) -> Result<Var> {
        self.unary(Op::Gelu, x, UnaryOp::Gelu, false)
    }

    /// `1 / (1 + e^-x)`.
    pub fn sigmoid(&mut self, x: Var) -> Result<Var> {
        self.unary(Op::Sigmoid, x, UnaryOp::Sigmoid, true)
    }
}

/// The input gradients of one layer op, in the order of its inputs
/// (`None` where an input needs none). `x_shape` is the first input's shape.
pub(super) fn backward(
    op: &Op,
    saved: &[Tensor],
    g: &Tensor,
    needs: &[bool],
    x_shape: &[usize],
) -> Result<Vec<Option<Tensor>>> {
    Ok(match *op {
        Op::Conv2d {
            stride,
            padding,
            variant,
        } => {
            let (x, w) = (&saved[0], &saved[1]);
            let geometry = ConvGeometry::new(x_shape, w.shape(), stride, padding)?;
            let pick =
                |pass| variant.unwrap_or_else(|| ConvVariant::choose(x.gpu(), &geometry, pass));
            let vx = needs[0].then(|| pick(ConvPass::InputGrad));
            let vw = needs[1].then(|| pick(ConvPass::WeightGrad));
            let (dx, dw) = conv::conv2d_backward(vx, vw, x, w, g, stride, padding)?;
            let mut grads = vec![dx, dw];
            if needs.len() == 3 {
                grads.push(
                    needs[2]
                        .then(|| conv::conv2d_backward_bias(g))
                        .transpose()?,
                );
            }
            grads
        }
        // With xhat = (x - mean) * invstd: dbeta = sum dy, dgamma = sum dy xhat,
        // dx = gamma invstd (dy - (dbeta + xhat dgamma) / count) in training.
        Op::BatchNorm { train, relu } => {
            let stats = BatchStats {
                mean: saved[1].clone(),
                invstd: saved[2].clone(),
            };
            let (dx, dgamma, dbeta) = if relu {
                let affine = saved.get(3).zip(saved.get(4));
                norm::batch_norm_relu_backward(&saved[0], g, &stats, affine, train)?
            } else {
                norm::batch_norm_backward(&saved[0], g, &stats, saved.get(3), train)?
            };
            let mut grads = vec![Some(dx)];
            if needs.len() == 3 {
                grads.extend([Some(dgamma), Some(dbeta)]);
            }
            grads
        }
        Op::LayerNorm => {
            let (x, gamma, mean, rstd) = (&saved[0], &saved[1], &saved[2], &saved[3]);
            let (dx, dgamma, dbeta) = norm::layer_norm_backward(x, g, gamma, mean, rstd)?;
            vec![Some(dx), Some(dgamma), Some(dbeta)]
        }
        Op::MaxPool2d(window) => {
            vec![Some(pool::max_pool2d_backward(
                g, &saved[0], x_shape, window,
            )?)]
        }
        Op::AvgPool2d(window) => vec![Some(pool::avg_pool2d_backward(g, x_shape, window)?)],
        // d gelu(x)/dx = Φ(x) + x φ(x) (saved input).
        Op::Gelu => vec![Some(ew::binary(g, &saved[0], BinaryOp::GeluGrad)?)],
        // d σ(x)/dx = σ(x) (1 - σ(x)) (saved output).
        Op::Sigmoid => vec![Some(ew::binary(g, &saved[0], BinaryOp::SigmoidGrad)?)],
        _ => {
            return Err(Error::invalid(
                "backward",
                format!("{op:?} is not a layer op"),
            ));
        }
    })
}
