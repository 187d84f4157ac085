//! Host side of `shaders/conv2d/`: 2-D convolution over NCHW inputs with OIHW
//! weights, square stride and zero padding, forward and backward, in four
//! variants side by side (and `texture_subgroup`, `texture` with its
//! weight fetches shared across a subgroup).

use crate::error::{Error, Result};
use crate::gpu::{Binding, DeviceClass, Gpu, Kernel, SMALL, dispatch, time_run, uniform};
use crate::kernels::elementwise::{BinaryOp, binary};
use crate::kernels::{matmul, reduce, transpose};
use crate::tensor::Tensor;

pub(crate) mod texture;

pub use crate::variant::{ConvPass, ConvVariant};
pub use texture::subgroup_source as texture_subgroup_source;

impl ConvVariant {
    /// The variant for one pass of a convolution of this geometry on
    /// `gpu`: the one forced by [`GpuOptions::conv`](crate::GpuOptions::conv),
    /// else the fastest eligible variant measured on the device the first
    /// time the shape is met (see `gpu::tune`), else
    /// [`ConvVariant::default_for`]. `direct` is measured only where the
    /// heuristic picks it (first layers' gradients, whose GEMM blocks are
    /// mostly padding) or on layers small enough to time quickly: elsewhere
    /// it runs at about 1 GFLOP/s.
    pub fn choose(gpu: &Gpu, g: &ConvGeometry, pass: ConvPass) -> ConvVariant {
        if let Some(v) = gpu.inner.conv {
            return v;
        }
        let fallback = ConvVariant::default_for(gpu, g, pass);
        let candidates: Vec<&'static str> = ConvVariant::ALL
            .into_iter()
            .filter(|v| match v {
                ConvVariant::Direct => g.macs() <= 60_000_000 || fallback == ConvVariant::Direct,
                ConvVariant::ImplicitGemm => true,
                ConvVariant::Im2col => cols_fit(gpu, g),
                ConvVariant::Texture => texture::fits(gpu, g),
                ConvVariant::TextureSubgroup => {
                    texture::fits(gpu, g) && texture::subgroup_fits(gpu)
                }
            })
            .map(|v| v.name())
            .collect();
        let key = format!(
            "conv2d/{pass}/n{}c{}h{}w{}o{}k{}x{}s{}p{}",
            g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.stride, g.padding
        );
        let mut time = |name: &'static str, to_beat: f64| -> Result<f64> {
            let variant: ConvVariant = name.parse()?;
            let x = Tensor::full(gpu, &[g.n, g.c, g.h, g.w], 0.5)?;
            let w = Tensor::full(gpu, &[g.o, g.c, g.kh, g.kw], 0.25)?;
            let dy = Tensor::full(gpu, &g.output_shape(), 0.1)?;
            let (s, p) = (g.stride, g.padding);
            time_run(gpu, to_beat, || {
                match pass {
                    ConvPass::Forward => conv2d_with(variant, &x, &w, None, s, p),
                    ConvPass::InputGrad => conv2d_backward_input(variant, &dy, &w, x.shape(), s, p),
                    ConvPass::WeightGrad => {
                        conv2d_backward_weight(variant, &x, &dy, w.shape(), s, p)
                    }
                }
                .map(drop)
            })
        };
        gpu.tuned(&key, &candidates, fallback.name(), g.macs(), &mut time)
            .parse()
            .unwrap_or(fallback)
    }

    /// Whether this variant runs on `gpu` at all: `texture_subgroup` needs
    /// subgroups of exactly 8 invocations; the others run everywhere
    /// (`texture` falls back to `im2col` where its textures do not fit).
    pub fn available(self, gpu: &Gpu) -> bool {
        self != ConvVariant::TextureSubgroup || texture::subgroup_fits(gpu)
    }

    /// The faster variant for one pass of a convolution of this geometry:
    /// the fallback when tuning is off, and the first candidate the tuner
    /// times (so that slower ones stop after one call).
    ///
    /// On CPU adapters (llvmpipe, 2 cores, batch 256) the texture variants
    /// win every ConvNet and ResNet layer of more than a few input
    /// channels once measured: `texture_subgroup` (where subgroups have 8
    /// invocations) ran 30-70 GFLOP/s forward, 30-72 for the input gradient
    /// and 21-52 for the weight gradient on the ConvNet's layers 2-4 (AMD
    /// EPYC Zen 5, `cargo run --release --example conv`), where the
    /// implicit GEMM runs 1.5-15 and `im2col` 2-17 depending on the CPU. So
    /// shapes large enough to be measured (see `gpu::tune`) take them; the
    /// others keep the earlier measured rules:
    ///
    /// - The forward of a layer with fewer than 4 input channels (a texel
    ///   holds 4) and the input gradient of one with fewer than 8 stay on
    ///   the implicit GEMM; with one input channel `direct` wins dx.
    /// - Below 64 taps c * kh * kw the `texture` variant's own weight
    ///   gradient wins (split over ranges of output rows, all 9 taps of a
    ///   1-channel layer in 3 column blocks: 3.05 GFLOP/s against 1.02 for
    ///   `im2col` and 0.63 for `direct`, 256 x 1 x 28 x 28), else `direct`;
    ///   small shapes' weight gradients go to `im2col` (the `texture`
    ///   matmul) while the patch matrix fits one storage binding, else to
    ///   the implicit GEMM.
    /// - On GPUs the GEMM kernels' data reuse beats direct's one load pair
    ///   per multiply-add. The texture variants and `im2col` have not been
    ///   measured on a GPU, so the implicit GEMM stays the default there.
    pub fn default_for(gpu: &Gpu, g: &ConvGeometry, pass: ConvPass) -> ConvVariant {
        if gpu.class() == DeviceClass::Gpu {
            return ConvVariant::ImplicitGemm;
        }
        let textured = if texture::subgroup_fits(gpu) {
            ConvVariant::TextureSubgroup
        } else {
            ConvVariant::Texture
        };
        // Shapes the tuner would measure, whose textures fit.
        let big = g.macs() >= SMALL && texture::fits(gpu, g);
        match pass {
            ConvPass::Forward if big && g.c >= 4 => textured,
            ConvPass::Forward => ConvVariant::ImplicitGemm,
            ConvPass::InputGrad if g.c < 2 => ConvVariant::Direct,
            ConvPass::InputGrad if big && g.c >= 8 => textured,
            ConvPass::InputGrad => ConvVariant::ImplicitGemm,
            ConvPass::WeightGrad if g.c * g.kh * g.kw < 64 && texture::fits(gpu, g) => {
                ConvVariant::Texture
            }
            ConvPass::WeightGrad if g.c * g.kh * g.kw < 64 => ConvVariant::Direct,
            ConvPass::WeightGrad if big && texture::weight_fits(g) => textured,
            ConvPass::WeightGrad if cols_fit(gpu, g) => ConvVariant::Im2col,
            ConvPass::WeightGrad => ConvVariant::ImplicitGemm,
        }
    }

    fn forward_kernel(self) -> Kernel {
        match self {
            ConvVariant::Direct => Kernel::new(
                "conv2d/direct",
                include_str!("../../shaders/conv2d/direct.wgsl"),
                "main",
            ),
            // Every load index is clamped in the shader.
            ConvVariant::ImplicitGemm => Kernel {
                trusted: true,
                ..Kernel::new(
                    "conv2d/implicit_gemm",
                    include_str!("../../shaders/conv2d/implicit_gemm.wgsl"),
                    "main",
                )
            },
            ConvVariant::Im2col => im2col_kernel("im2col"),
            ConvVariant::Texture | ConvVariant::TextureSubgroup => texture::kernel("forward"),
        }
    }

    fn backward_kernel(self, entry: &'static str) -> Kernel {
        match self {
            ConvVariant::Direct => Kernel::new(
                "conv2d/backward_direct",
                include_str!("../../shaders/conv2d/backward_direct.wgsl"),
                entry,
            ),
            ConvVariant::ImplicitGemm => Kernel {
                trusted: true,
                ..Kernel::new(
                    "conv2d/backward_gemm",
                    include_str!("../../shaders/conv2d/backward_gemm.wgsl"),
                    entry,
                )
            },
            // The data movement of each pass: col2im for dx, im2col for dw.
            ConvVariant::Im2col if entry == "input" => im2col_kernel("col2im"),
            ConvVariant::Im2col => im2col_kernel("im2col"),
            ConvVariant::Texture | ConvVariant::TextureSubgroup if entry == "input" => {
                texture::kernel("input")
            }
            ConvVariant::Texture | ConvVariant::TextureSubgroup => im2col_kernel("im2col"),
        }
    }
}

fn im2col_kernel(entry: &'static str) -> Kernel {
    Kernel::new(
        "conv2d/im2col",
        include_str!("../../shaders/conv2d/im2col.wgsl"),
        entry,
    )
}

/// The patch matrix of `x`: `[n * oh * ow, c * kh * kw]` (see im2col.wgsl).
fn im2col(x: &Tensor, g: &ConvGeometry) -> Result<Tensor> {
    let gpu = x.gpu();
    let cols = Tensor::uninit(gpu, &[g.n * g.oh * g.ow, g.c * g.kh * g.kw])?;
    let groups = gpu.grid(((g.n * g.oh * g.ow * g.c) as u64).div_ceil(256))?;
    let kernel = ConvVariant::Im2col.forward_kernel();
    dispatch(
        gpu,
        &kernel,
        &[],
        &g.params(0),
        &[x.binding(1), cols.binding(2)],
        groups,
    )?;
    Ok(cols)
}

/// `dy` `[n, o, oh, ow]` as the matrix `[n * oh * ow, o]`.
fn pixels_by_channels(dy: &Tensor, g: &ConvGeometry) -> Result<Tensor> {
    let t = transpose::transpose(&dy.reshape(&[g.n, g.o, g.oh * g.ow])?)?;
    t.reshape(&[g.n * g.oh * g.ow, g.o])
}

/// Whether the patch matrix of a convolution fits one storage binding.
fn cols_fit(gpu: &Gpu, g: &ConvGeometry) -> bool {
    let bytes = (g.n * g.oh * g.ow) as u64 * (g.c * g.kh * g.kw) as u64 * 4;
    let l = gpu.limits();
    bytes <= l.max_storage_buffer_binding_size.min(l.max_buffer_size)
}

/// The sizes of one convolution: input `[n, c, h, w]`, weight
/// `[o, c, kh, kw]`, output `[n, o, oh, ow]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeometry {
    /// Checks the shapes of a convolution and works out its output size.
    pub fn new(x: &[usize], w: &[usize], stride: usize, padding: usize) -> Result<ConvGeometry> {
        let (&[n, c, h, wd], &[o, ci, kh, kw]) = (x, w) else {
            return Err(Error::shape(
                "conv2d",
                &[x, w],
                "the input must be [N, C, H, W] and the weight [O, C, KH, KW]",
            ));
        };
        if c != ci {
            return Err(Error::shape(
                "conv2d",
                &[x, w],
                format!("the input has {c} channels but the weight expects {ci}"),
            ));
        }
        if stride == 0 {
            return Err(Error::invalid("conv2d", "the stride must be at least 1"));
        }
        let (ph, pw) = (h + 2 * padding, wd + 2 * padding);
        if kh > ph || kw > pw || kh == 0 || kw == 0 {
            return Err(Error::shape(
                "conv2d",
                &[x, w],
                format!(
                    "the {kh}x{kw} kernel does not fit the {ph}x{pw} padded input (padding {padding})"
                ),
            ));
        }
        Ok(ConvGeometry {
            n,
            c,
            h,
            w: wd,
            o,
            kh,
            kw,
            stride,
            padding,
            oh: (ph - kh) / stride + 1,
            ow: (pw - kw) / stride + 1,
        })
    }

    /// Multiply-adds of the forward pass (each backward pass does as many).
    pub fn macs(&self) -> u64 {
        (self.n * self.o * self.oh * self.ow) as u64 * (self.c * self.kh * self.kw) as u64
    }

    /// The output shape `[n, o, oh, ow]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.oh, self.ow]
    }

    fn params(&self, chunk: usize) -> Params {
        let u = |v: usize| v as u32;
        Params {
            n: u(self.n),
            c: u(self.c),
            h: u(self.h),
            w: u(self.w),
            o: u(self.o),
            oh: u(self.oh),
            ow: u(self.ow),
            kh: u(self.kh),
            kw: u(self.kw),
            stride: u(self.stride),
            pad: u(self.padding),
            chunk: u(chunk),
        }
    }
}

uniform! {
    pub(crate) struct Params {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        o: u32,
        oh: u32,
        ow: u32,
        kh: u32,
        kw: u32,
        stride: u32,
        pad: u32,
        /// Images per partial sum of the GEMM weight gradient.
        chunk: u32,
    }
}

/// Workgroups of the register-blocked kernels for a `rows x cols` GEMM.
fn gemm_groups(gpu: &Gpu, what: &str, rows: usize, cols: usize, z: usize) -> Result<[u32; 3]> {
    let g = [
        rows.div_ceil(8).div_ceil(64) as u64,
        cols.div_ceil(16) as u64,
        z as u64,
    ];
    let max = gpu.limits().max_compute_workgroups_per_dimension as u64;
    if let Some(&over) = g.iter().find(|&&d| d > max) {
        return Err(Error::Limit {
            what: what.to_string(),
            limit: "max_compute_workgroups_per_dimension",
            requested: over,
            allowed: max,
        });
    }
    Ok(g.map(|d| d as u32))
}

uniform! {
    pub(crate) struct PackParams {
        rows: u32,
        cols: u32,
        cols16: u32,
        taps: u32,
        stride_r: u32,
        stride_col: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// The weights `[o, c, kh, kw]` repacked for the GEMM kernels as
/// `[kh * kw, o, c16]` (`for_input`: the input gradient's B) or
/// `[kh * kw, c, o16]` (the forward's B), the 16-wide dimension zero-padded.
fn pack_weights(w: &Tensor, g: &ConvGeometry, for_input: bool) -> Result<Tensor> {
    let taps = g.kh * g.kw;
    let (rows, cols, stride_r, stride_col) = if for_input {
        (g.o, g.c, g.c * taps, taps)
    } else {
        (g.c, g.o, taps, g.c * taps)
    };
    let cols16 = cols.div_ceil(16) * 16;
    let gpu = w.gpu();
    let wp = Tensor::uninit(gpu, &[taps, rows, cols16])?;
    let u = |v: usize| v as u32;
    let params = PackParams {
        rows: u(rows),
        cols: u(cols),
        cols16: u(cols16),
        taps: u(taps),
        stride_r: u(stride_r),
        stride_col: u(stride_col),
        _pad0: 0,
        _pad1: 0,
    };
    let kernel = Kernel::new(
        "conv2d/pack_weights",
        include_str!("../../shaders/conv2d/pack_weights.wgsl"),
        "main",
    );
    let groups = gpu.grid((wp.numel() as u64).div_ceil(256))?;
    let bindings = [w.binding(1), wp.binding(2)];
    dispatch(gpu, &kernel, &[], &params, &bindings, groups)?;
    Ok(wp)
}

/// `conv2d` with the variant [`ConvVariant::choose`] picks for its geometry.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let g = ConvGeometry::new(x.shape(), w.shape(), stride, padding)?;
    conv2d_with(
        ConvVariant::choose(x.gpu(), &g, ConvPass::Forward),
        x,
        w,
        bias,
        stride,
        padding,
    )
}

/// The convolution of `x` `[N, C, H, W]` with `w` `[O, C, KH, KW]`, plus
/// `bias` `[O]` if given: `[N, O, OH, OW]` with OH = (H + 2 padding - KH) /
/// stride + 1 (likewise OW), as PyTorch's `conv2d`.
pub fn conv2d_with(
    variant: ConvVariant,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    x.same_gpu(w, "conv2d")?;
    let g = ConvGeometry::new(x.shape(), w.shape(), stride, padding)?;
    if let Some(b) = bias {
        x.same_gpu(b, "conv2d")?;
        if b.shape() != [g.o] {
            return Err(Error::shape(
                "conv2d",
                &[w.shape(), b.shape()],
                format!("the bias must be [{}]", g.o),
            ));
        }
    }
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, &g.output_shape())?;
    if out.numel() == 0 {
        return Ok(out);
    }
    if g.c == 0 {
        return Tensor::zeros(gpu, &g.output_shape());
    }
    let constants = [("HAS_BIAS", bias.is_some() as u32 as f64)];
    let (groups, wb) = match variant {
        ConvVariant::Im2col => {
            let cols = im2col(x, &g)?;
            let taps = g.c * g.kh * g.kw;
            let y = matmul::matmul(&cols, &w.reshape(&[g.o, taps])?, false, true)?;
            let y = transpose::transpose(&y.reshape(&[g.n, g.oh * g.ow, g.o])?)?;
            let y = y.reshape(&g.output_shape())?;
            return match bias {
                Some(b) => binary(&y, &b.reshape(&[g.o, 1, 1])?, BinaryOp::Add),
                None => Ok(y),
            };
        }
        ConvVariant::Texture | ConvVariant::TextureSubgroup => {
            let shared = variant == ConvVariant::TextureSubgroup;
            texture::forward(x, w, bias, &out, &g, shared)?;
            return Ok(out);
        }
        ConvVariant::Direct => (gpu.grid((out.numel() as u64).div_ceil(256))?, None),
        ConvVariant::ImplicitGemm => (
            gemm_groups(gpu, &format!("conv2d {g:?}"), g.n * g.oh * g.ow, g.o, 1)?,
            Some(pack_weights(w, &g, false)?),
        ),
    };
    let w = wb.as_ref().unwrap_or(w);
    let bindings = [
        x.binding(1),
        w.binding(2),
        bias.unwrap_or(w).binding(3),
        out.binding(4),
    ];
    dispatch(
        gpu,
        &variant.forward_kernel(),
        &constants,
        &g.params(0),
        &bindings,
        groups,
    )?;
    Ok(out)
}

fn check_grad(op: &'static str, dy: &Tensor, g: &ConvGeometry) -> Result<()> {
    if dy.shape() != g.output_shape() {
        return Err(Error::shape(
            op,
            &[dy.shape(), &g.output_shape()],
            "the output gradient must have the convolution's output shape",
        ));
    }
    Ok(())
}

/// dL/dx of a convolution, given dL/dy `dy` and the weight `w`: the
/// transposed convolution of `dy`, of shape `x_shape`.
pub fn conv2d_backward_input(
    variant: ConvVariant,
    dy: &Tensor,
    w: &Tensor,
    x_shape: &[usize],
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let g = ConvGeometry::new(x_shape, w.shape(), stride, padding)?;
    check_grad("conv2d_backward_input", dy, &g)?;
    let gpu = dy.gpu();
    let dx = Tensor::uninit(gpu, x_shape)?;
    if dx.numel() == 0 {
        return Ok(dx);
    }
    if g.o == 0 {
        return Tensor::zeros(gpu, x_shape);
    }
    let kernel = variant.backward_kernel("input");
    match variant {
        ConvVariant::Texture | ConvVariant::TextureSubgroup => {
            let shared = variant == ConvVariant::TextureSubgroup;
            texture::input_grad(dy, w, &dx, &g, shared)?
        }
        ConvVariant::Im2col => {
            let dyt = pixels_by_channels(dy, &g)?;
            let w = w.reshape(&[g.o, g.c * g.kh * g.kw])?;
            let dcols = matmul::matmul(&dyt, &w, false, false)?;
            let groups = gpu.grid((dx.numel() as u64).div_ceil(256))?;
            let bindings = [dcols.binding(1), dx.binding(2)];
            dispatch(gpu, &kernel, &[], &g.params(0), &bindings, groups)?;
        }
        ConvVariant::Direct => {
            let groups = gpu.grid((dx.numel() as u64).div_ceil(256))?;
            let bindings: [Binding; 3] = [dy.binding(1), w.binding(2), dx.binding(3)];
            dispatch(gpu, &kernel, &[], &g.params(0), &bindings, groups)?;
        }
        ConvVariant::ImplicitGemm => {
            // One z slice per stride phase; the largest phase sets x.
            let s = g.stride;
            let rows = g.n * g.h.div_ceil(s) * g.w.div_ceil(s);
            let what = format!("conv2d input gradient {g:?}");
            let groups = gemm_groups(gpu, &what, rows, g.c, s * s)?;
            let wp = pack_weights(w, &g, true)?;
            let bindings: [Binding; 3] = [dy.binding(1), dx.binding(3), wp.binding(4)];
            dispatch(gpu, &kernel, &[], &g.params(0), &bindings, groups)?;
        }
    }
    Ok(dx)
}

/// Images per partial sum of the GEMM weight gradient: enough partial sums
/// that small layers still fill the device (about 64 workgroups, so that
/// llvmpipe's threads balance), few enough that the partials stay small next
/// to the work of the GEMM itself.
fn weight_chunk(g: &ConvGeometry) -> usize {
    let blocks = (g.c * g.kh * g.kw).div_ceil(8 * 64) * g.o.div_ceil(16);
    let splits = 64usize.div_ceil(blocks).clamp(1, g.n.max(1));
    g.n.div_ceil(splits).max(1)
}

/// Output pixels (over the batch and the output plane) each invocation of
/// the direct weight gradient sums: well under the 65 535 iterations after
/// which llvmpipe ends a loop.
pub(crate) const DIRECT_RANGE: usize = 16_384;

/// dL/dw of a convolution, given the input `x` and dL/dy `dy`: `w_shape`.
pub fn conv2d_backward_weight(
    variant: ConvVariant,
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    x.same_gpu(dy, "conv2d_backward_weight")?;
    let g = ConvGeometry::new(x.shape(), w_shape, stride, padding)?;
    check_grad("conv2d_backward_weight", dy, &g)?;
    let gpu = x.gpu();
    let taps = g.c * g.kh * g.kw;
    if g.o * taps == 0 {
        return Tensor::uninit(gpu, w_shape);
    }
    if g.n * g.oh * g.ow == 0 {
        return Tensor::zeros(gpu, w_shape);
    }
    if matches!(variant, ConvVariant::Texture | ConvVariant::TextureSubgroup)
        && let Some(dw) = texture::weight_grad(x, dy, &g, variant == ConvVariant::TextureSubgroup)?
    {
        return dw.reshape(w_shape);
    }
    match variant {
        ConvVariant::Im2col | ConvVariant::Texture | ConvVariant::TextureSubgroup => {
            // dw = dyt^T cols, a reduction over every output pixel of the
            // batch. Longer than DIRECT_RANGE, it is cut into equal ranges,
            // multiplied as a batch and summed: one long reduction is
            // slower on a GPU and, on llvmpipe, wrong (its loops stop after
            // 65 535 iterations, and the packed operand would outgrow a
            // texture).
            let pixels = g.n * g.oh * g.ow;
            let ranges = (pixels.div_ceil(DIRECT_RANGE)..=pixels)
                .find(|r| pixels.is_multiple_of(*r))
                .unwrap_or(pixels);
            let per = pixels / ranges;
            if ranges > 1 && per < 1024 {
                // No even cut into long ranges (a pixel count with no
                // divisor near DIRECT_RANGE): the implicit GEMM, which cuts
                // the batch itself.
                return conv2d_backward_weight(
                    ConvVariant::ImplicitGemm,
                    x,
                    dy,
                    w_shape,
                    stride,
                    padding,
                );
            }
            let dyt = pixels_by_channels(dy, &g)?.reshape(&[ranges, per, g.o])?;
            let cols = im2col(x, &g)?.reshape(&[ranges, per, taps])?;
            let parts = matmul::matmul(&dyt, &cols, true, false)?;
            let dw = if ranges == 1 {
                parts.reshape(&[g.o, taps])?
            } else {
                reduce::sum_axis(&parts, 0)?
            };
            dw.reshape(w_shape)
        }
        ConvVariant::Direct => {
            // Partial sums over ranges of DIRECT_RANGE output pixels (see
            // the shader: llvmpipe cuts longer loops short), then their sum.
            let pixels = g.n * g.oh * g.ow;
            let ranges = pixels.div_ceil(DIRECT_RANGE);
            let parts = Tensor::uninit(gpu, &[ranges, g.o * taps])?;
            let groups = gpu.grid((parts.numel() as u64).div_ceil(256))?;
            let kernel = variant.backward_kernel("weight");
            let bindings = [x.binding(1), dy.binding(2), parts.binding(3)];
            dispatch(
                gpu,
                &kernel,
                &[],
                &g.params(DIRECT_RANGE),
                &bindings,
                groups,
            )?;
            let dw = if ranges == 1 {
                parts
            } else {
                reduce::sum_axis(&parts, 0)?
            };
            dw.reshape(w_shape)
        }
        ConvVariant::ImplicitGemm => {
            let chunk = weight_chunk(&g);
            let splits = g.n.div_ceil(chunk);
            let parts = Tensor::uninit(gpu, &[splits, g.o * taps])?;
            let what = format!("conv2d weight gradient {g:?}");
            let groups = gemm_groups(gpu, &what, taps, g.o, splits)?;
            let kernel = variant.backward_kernel("weight");
            let bindings = [x.binding(1), dy.binding(2), parts.binding(3)];
            dispatch(gpu, &kernel, &[], &g.params(chunk), &bindings, groups)?;
            let dw = if splits == 1 {
                parts
            } else {
                reduce::sum_axis(&parts, 0)?
            };
            dw.reshape(w_shape)
        }
    }
}

/// dL/dx (with `dx`'s variant) and dL/dw (with `dw`'s) of a convolution
/// in one call, `None` for a gradient not asked for: what the autograd tape
/// runs. Where both run on `texture` (or `texture_subgroup`), dy is packed into a texture once and
/// read by both kernels; otherwise this is [`conv2d_backward_input`] and
/// [`conv2d_backward_weight`].
pub fn conv2d_backward(
    dx: Option<ConvVariant>,
    dw: Option<ConvVariant>,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    x.same_gpu(dy, "conv2d_backward")?;
    x.same_gpu(w, "conv2d_backward")?;
    let g = ConvGeometry::new(x.shape(), w.shape(), stride, padding)?;
    check_grad("conv2d_backward", dy, &g)?;
    let texture = |v: Option<ConvVariant>| {
        matches!(v, Some(ConvVariant::Texture | ConvVariant::TextureSubgroup))
    };
    let shared = texture(dx)
        && texture(dw)
        && g.o > 0
        && g.c * g.kh * g.kw > 0
        && g.n * g.oh * g.ow > 0
        && texture::weight_fits(&g);
    if !shared {
        let dx = dx
            .map(|v| conv2d_backward_input(v, dy, w, x.shape(), stride, padding))
            .transpose()?;
        let dw = dw
            .map(|v| conv2d_backward_weight(v, x, dy, w.shape(), stride, padding))
            .transpose()?;
        return Ok((dx, dw));
    }
    let packed = texture::pack_dy(dy, &g, true)?;
    let gx = Tensor::uninit(x.gpu(), x.shape())?;
    let subgroup = dx == Some(ConvVariant::TextureSubgroup);
    texture::input_grad_packed(&packed, w, &gx, &g, subgroup)?;
    let gw = texture::weight_grad_packed(x, &packed, &g, dw == Some(ConvVariant::TextureSubgroup))?;
    Ok((Some(gx), Some(gw)))
}

/// dL/dbias of a convolution: `dy` `[N, O, OH, OW]` summed to `[O]`.
pub fn conv2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    let &[n, o, oh, ow] = dy.shape() else {
        return Err(Error::shape(
            "conv2d_backward_bias",
            &[dy.shape()],
            "the output gradient must be [N, O, OH, OW]",
        ));
    };
    let per_image = reduce::sum_axis(&dy.reshape(&[n, o, oh * ow])?, 2)?;
    reduce::sum_axis(&per_image, 0)
}
