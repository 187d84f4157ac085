//! The `texture` variant of conv2d (`shaders/conv2d/texture.wgsl`): the
//! input (or dy) and the weights packed into rgba32float textures, then an
//! implicit GEMM of 16 x 16 blocks from texel fetches, and the weight
//! gradient as partial sums over ranges of output rows from texel fetches.

use super::{ConvGeometry, DIRECT_RANGE};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Gpu, Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../../shaders/conv2d/texture.wgsl");

pub(super) fn kernel(entry: &'static str) -> Kernel {
    // Fetches stay inside the zero-padded textures; stores are guarded.
    Kernel {
        trusted: true,
        ..Kernel::new("conv2d/texture", SOURCE, entry)
    }
}

/// The subgroup invocations `texture_subgroup`'s weight panel is shared by.
const SUBGROUP: u32 = 8;

/// The `texture_subgroup` module: texture.wgsl with its `panel` replaced by
/// shaders/conv2d/texture_subgroup.wgsl (tests/shaders.rs builds the same).
pub fn subgroup_source() -> &'static str {
    static SOURCE_SG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE_SG.get_or_init(|| {
        let (head, rest) = SOURCE
            .split_once("// panel:begin")
            .expect("texture.wgsl marks its panel");
        let (_, tail) = rest
            .split_once("// panel:end")
            .expect("texture.wgsl marks its panel");
        let subgroup = include_str!("../../../shaders/conv2d/texture_subgroup.wgsl");
        format!("{head}{subgroup}{tail}")
    })
}

fn subgroup_kernel(entry: &'static str) -> Kernel {
    Kernel {
        trusted: true,
        ..Kernel::new("conv2d/texture_subgroup", subgroup_source(), entry)
    }
}

/// Whether `texture_subgroup` runs on `gpu`: subgroup operations, with
/// subgroups of exactly 8 invocations (llvmpipe at 256 bits).
pub(super) fn subgroup_fits(gpu: &Gpu) -> bool {
    let info = gpu.adapter_info();
    gpu.features().contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == SUBGROUP
        && info.subgroup_max_size == SUBGROUP
}

/// `entry` of `texture`, or of `texture_subgroup` where `shared` (an error
/// where the device cannot run it).
fn gemm_kernel(gpu: &Gpu, entry: &'static str, shared: bool) -> Result<Kernel> {
    if !shared {
        return Ok(kernel(entry));
    }
    if !subgroup_fits(gpu) {
        let info = gpu.adapter_info();
        return Err(Error::invalid(
            "conv2d",
            format!(
                "the texture_subgroup variant needs subgroups of exactly {SUBGROUP} invocations; \
                 this device has {} (subgroup operations {})",
                if info.subgroup_min_size == info.subgroup_max_size {
                    info.subgroup_min_size.to_string()
                } else {
                    format!("{} to {}", info.subgroup_min_size, info.subgroup_max_size)
                },
                if gpu.features().contains(wgpu::Features::SUBGROUP) {
                    "supported"
                } else {
                    "unsupported"
                }
            ),
        ));
    }
    Ok(subgroup_kernel(match entry {
        "forward" => "forward_subgroup",
        "input" => "input_subgroup",
        _ => "weight_subgroup",
    }))
}

uniform! {
    pub(crate) struct TextureParams {
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
        c4: u32,
        hp: u32,
        wp: u32,
        per_page: u32,
        margin: u32,
        o4: u32,
        dy_per_page: u32,
        rows: u32,
        ranges: u32,
        dy_margin: u32,
    }
}

/// An rgba32float texture written by a pack kernel and read by the GEMM.
struct Packed {
    view: wgpu::TextureView,
    size: (u32, u32),
}

fn texture(gpu: &Gpu, what: &str, width: usize, height: usize) -> Result<Packed> {
    let max = gpu.limits().max_texture_dimension_2d as usize;
    if width > max || height > max {
        return Err(Error::Limit {
            what: format!("{what} packed into a {width} x {height} texture"),
            limit: "max_texture_dimension_2d",
            requested: width.max(height) as u64,
            allowed: max as u64,
        });
    }
    let _gl = gpu.inner.gl();
    let texture = gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: Some("darkmatter conv2d operand"),
        size: wgpu::Extent3d {
            width: width.max(1) as u32,
            height: height.max(1) as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    });
    Ok(Packed {
        view: texture.create_view(&wgpu::TextureViewDescriptor::default()),
        size: (width.max(1) as u32, height.max(1) as u32),
    })
}

/// How images of `h x w` with `margin` zeros around them and `c` channels
/// lie in a texture: (c4, hp, wp, per_page, width, height).
fn layout(gpu: &Gpu, n: usize, c: usize, h: usize, w: usize, margin: usize) -> [usize; 6] {
    let max = gpu.limits().max_texture_dimension_2d as usize;
    let (c4, hp, wp) = (c.div_ceil(4), h + 2 * margin, w + 2 * margin);
    let per_page = (max / hp).clamp(1, n.max(1));
    let pages = n.div_ceil(per_page);
    [c4, hp, wp, per_page, pages * wp * c4, per_page * hp]
}

/// Whether the textures of a convolution fit the device.
pub(super) fn fits(gpu: &Gpu, g: &ConvGeometry) -> bool {
    let max = gpu.limits().max_texture_dimension_2d as usize;
    let [.., xw, xh] = layout(gpu, g.n, g.c, g.h, g.w, g.padding);
    let m = margin(g);
    let [.., dw, dh] = layout(gpu, g.n, g.o, g.oh, g.ow, m);
    let taps = g.kh * g.kw;
    let wrows = (taps * g.c.div_ceil(4) * 4).max(taps * g.o.div_ceil(4) * 4);
    xw <= max && xh <= max && dw <= max && dh <= max && wrows <= max
}

/// The zeros around packed dy: the reach of `input`'s taps past dy's
/// edges, over every stride phase and both axes.
fn margin(g: &ConvGeometry) -> usize {
    reach(g.kh, g.h, g.oh, g.stride, g.padding).max(reach(g.kw, g.w, g.ow, g.stride, g.padding))
}

/// How far `input` reads past either end of a dy axis of `out` values: the
/// input pixels of phase f are f, f + s, ...; pixel q of that phase reads dy
/// at q + (f + pad - k) / s for its taps k = f + pad (mod s).
fn reach(taps: usize, len: usize, out: usize, s: usize, pad: usize) -> usize {
    let mut most = 0i64;
    for f in 0..s.min(len) {
        let phase_len = (len - f).div_ceil(s) as i64;
        for k in (0..taps).filter(|k| (f + pad + s - k % s).is_multiple_of(s)) {
            let offset = (f as i64 + pad as i64 - k as i64) / s as i64;
            most = most
                .max(-offset)
                .max(phase_len - 1 + offset - (out as i64 - 1));
        }
    }
    most as usize
}

fn params(g: &ConvGeometry, input: bool, lay: [usize; 6], margin: usize) -> TextureParams {
    let u = |v: usize| v as u32;
    // `input` runs the GEMM from dy (o channels, oh x ow) to dx (c, h x w).
    let (n_in, c_in, h_in, w_in, c_out, h_out, w_out) = if input {
        (g.n, g.o, g.oh, g.ow, g.c, g.h, g.w)
    } else {
        (g.n, g.c, g.h, g.w, g.o, g.oh, g.ow)
    };
    TextureParams {
        n: u(n_in),
        c: u(c_in),
        h: u(h_in),
        w: u(w_in),
        o: u(c_out),
        oh: u(h_out),
        ow: u(w_out),
        kh: u(g.kh),
        kw: u(g.kw),
        stride: u(g.stride),
        pad: u(g.padding),
        c4: u(lay[0]),
        hp: u(lay[1]),
        wp: u(lay[2]),
        per_page: u(lay[3]),
        margin: u(margin),
        o4: 0,
        dy_per_page: 0,
        rows: 0,
        ranges: 0,
        dy_margin: 0,
    }
}

/// Packs `src` (`[n, c, h, w]`, as `p` describes it) into a texture.
fn pack_input(src: &Tensor, p: &TextureParams, lay: [usize; 6]) -> Result<Packed> {
    let gpu = src.gpu();
    let t = texture(gpu, "a conv2d input", lay[4], lay[5])?;
    // One invocation per row segment: (page, channel group, texture row).
    let segments = (lay[4] / (lay[2] * lay[0]).max(1)) * lay[0] * lay[5];
    let groups = gpu.grid(segments.div_ceil(64) as u64)?;
    let bindings = [src.binding(1), Binding::texture(2, &t.view)];
    dispatch(gpu, &kernel("pack_input"), &[], p, &bindings, groups)?;
    Ok(t)
}

/// Packs the weights as the B matrix of the GEMM: rows (tap, input
/// channel of the GEMM), 4 output channels of the GEMM per texel.
/// `block` (16 per block of [`blocks`]) output channels of the GEMM per lane.
fn pack_weights(w: &Tensor, p: &TextureParams, transposed: bool, block: usize) -> Result<Packed> {
    let gpu = w.gpu();
    let rows = (p.kh * p.kw * p.c4 * 4) as usize;
    let width = (p.o as usize).div_ceil(block) * block / 4;
    let t = texture(gpu, "conv2d weights", width, rows)?;
    let groups = [t.size.0.div_ceil(8), t.size.1.div_ceil(8), 1];
    let bindings = [w.binding(1), Binding::texture(2, &t.view)];
    let constants = [("TRANSPOSED", transposed as u32 as f64)];
    dispatch(
        gpu,
        &kernel("pack_weights"),
        &constants,
        p,
        &bindings,
        groups,
    )?;
    Ok(t)
}

/// 16-channel blocks per lane for `cols` output channels of the GEMM:
/// one on `texture`, whose lanes each fetch the whole weight panel; on
/// `texture_subgroup`, where the panel is shared and a lane's input fetches
/// are what is left, four (64 channels from the same input texels) where
/// they pad `cols` no further than two do, else two. On the ConvNet's
/// Fashion-MNIST step (AMD EPYC Zen 5, three alternating pairs) four
/// instead of two took the forward from 0.45-0.56 to 0.42 s and the input
/// gradient from 0.54 to 0.49-0.52 s per two steps.
fn blocks(shared: bool, cols: usize) -> usize {
    if !shared {
        1
    } else if cols.next_multiple_of(64) == cols.next_multiple_of(32) {
        4
    } else {
        2
    }
}

/// Workgroups for `pixels` output pixels in blocks of 16, `cols` output
/// channels in blocks of `block` and `z` phases.
fn groups(
    gpu: &Gpu,
    g: &ConvGeometry,
    pixels: usize,
    (cols, block): (usize, usize),
    z: usize,
) -> Result<[u32; 3]> {
    let d = [pixels.div_ceil(16).div_ceil(64), cols.div_ceil(block), z];
    within_limits(gpu, || format!("a texture conv2d of {g:?}"), d)
}

/// `d` as a dispatch's workgroup counts, or the limit one of them exceeds.
fn within_limits(gpu: &Gpu, what: impl Fn() -> String, d: [usize; 3]) -> Result<[u32; 3]> {
    let max = gpu.limits().max_compute_workgroups_per_dimension as u64;
    if let Some(&over) = d.iter().find(|&&v| v as u64 > max) {
        return Err(Error::Limit {
            what: what(),
            limit: "max_compute_workgroups_per_dimension",
            requested: over as u64,
            allowed: max,
        });
    }
    Ok(d.map(|v| v as u32))
}

/// The forward: `out` `[n, o, oh, ow]` from `x`, `w` and an optional bias;
/// with the weight panel shared by each subgroup where `shared`.
pub(super) fn forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    g: &ConvGeometry,
    shared: bool,
) -> Result<()> {
    let gpu = x.gpu();
    let gemm = gemm_kernel(gpu, "forward", shared)?;
    let lay = layout(gpu, g.n, g.c, g.h, g.w, g.padding);
    let p = params(g, false, lay, g.padding);
    let tx = pack_input(x, &p, lay)?;
    let block = 16 * blocks(shared, g.o);
    let tw = pack_weights(w, &p, false, block)?;
    let groups = groups(gpu, g, g.n * g.oh * g.ow, (g.o, block), 1)?;
    let bindings = [
        Binding::texture(1, &tx.view),
        Binding::texture(2, &tw.view),
        bias.unwrap_or(w).binding(3),
        out.binding(4),
    ];
    let constants = [
        ("HAS_BIAS", bias.is_some() as u32 as f64),
        ("BLOCKS", (block / 16) as f64),
    ];
    dispatch(gpu, &gemm, &constants, &p, &bindings, groups)
}

/// dy packed as an input of o channels, oh x ow, with `margin` zeros
/// around each image: [`margin`] for `input`, which `weight` also reads,
/// or 0 where only `weight` does.
pub(super) struct PackedDy {
    tex: Packed,
    lay: [usize; 6],
    margin: usize,
}

/// Packs dy for the gradients of `g`: with `input`'s margin when
/// `for_input`, else without.
pub(super) fn pack_dy(dy: &Tensor, g: &ConvGeometry, for_input: bool) -> Result<PackedDy> {
    let m = if for_input { margin(g) } else { 0 };
    let lay = layout(dy.gpu(), g.n, g.o, g.oh, g.ow, m);
    let p = params(g, true, lay, m);
    let tex = pack_input(dy, &p, lay)?;
    Ok(PackedDy {
        tex,
        lay,
        margin: m,
    })
}

/// The input gradient: `dx` `[n, c, h, w]` from `dy` and `w`, one
/// dispatch covering the stride's s * s phases; with the weight panel
/// shared by each subgroup where `shared`.
pub(super) fn input_grad(
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    g: &ConvGeometry,
    shared: bool,
) -> Result<()> {
    gemm_kernel(w.gpu(), "input", shared)?;
    input_grad_packed(&pack_dy(dy, g, true)?, w, dx, g, shared)
}

/// [`input_grad`] from dy packed by [`pack_dy`] with `input`'s margin.
pub(super) fn input_grad_packed(
    dy: &PackedDy,
    w: &Tensor,
    dx: &Tensor,
    g: &ConvGeometry,
    shared: bool,
) -> Result<()> {
    let gpu = w.gpu();
    let gemm = gemm_kernel(gpu, "input", shared)?;
    debug_assert_eq!(dy.margin, margin(g));
    let p = params(g, true, dy.lay, dy.margin);
    let block = 16 * blocks(shared, g.c);
    let tw = pack_weights(w, &p, true, block)?;
    let s = g.stride;
    let pixels = g.n * g.h.div_ceil(s) * g.w.div_ceil(s);
    let groups = groups(gpu, g, pixels, (g.c, block), s * s)?;
    let bindings = [
        Binding::texture(1, &dy.tex.view),
        Binding::texture(2, &tw.view),
        w.binding(3),
        dx.binding(4),
    ];
    let constants = [("BLOCKS", (block / 16) as f64)];
    dispatch(gpu, &gemm, &constants, &p, &bindings, groups)
}

/// Invocations the weight gradient aims for: enough that llvmpipe's
/// threads balance and a GPU has work, few enough that the partial sums
/// stay small next to the GEMM.
const WEIGHT_INVOCATIONS: usize = 1024;

/// How the weight gradient cuts the batch's output rows (n, oy): rows per
/// range and ranges, or `None` where one output row is longer than a range
/// may be (llvmpipe's loop limit).
fn weight_ranges(g: &ConvGeometry) -> Option<(usize, usize)> {
    let rows = g.n * g.oh;
    let max_rows = DIRECT_RANGE / g.ow.max(1);
    if max_rows == 0 || rows == 0 {
        return None;
    }
    let blocks = g.o.div_ceil(16) * (g.kh * g.kw * g.c.div_ceil(4)).div_ceil(4);
    // At least 8 ranges, in multiples of 8: more parallel work on layers
    // with many blocks, where the partial sums stay small next to the GEMM.
    let want = WEIGHT_INVOCATIONS
        .div_ceil(blocks)
        .next_multiple_of(8)
        .clamp(1, rows);
    let per = rows.div_ceil(want).clamp(1, max_rows);
    Some((per, rows.div_ceil(per)))
}

/// Whether [`weight_grad`] can run `g` (else the caller takes `im2col`).
pub(super) fn weight_fits(g: &ConvGeometry) -> bool {
    weight_ranges(g).is_some()
}

/// The weight gradient: dw `[o, c, kh, kw]` from `x` and `dy`, or `None`
/// where its ranges cannot be cut (see [`weight_ranges`]); the caller then
/// takes the `im2col` path.
pub(super) fn weight_grad(
    x: &Tensor,
    dy: &Tensor,
    g: &ConvGeometry,
    shared: bool,
) -> Result<Option<Tensor>> {
    if !weight_fits(g) {
        return Ok(None);
    }
    gemm_kernel(x.gpu(), "weight", shared)?;
    weight_grad_packed(x, &pack_dy(dy, g, false)?, g, shared).map(Some)
}

/// [`weight_grad`] from dy packed by [`pack_dy`], with or without margin;
/// `g` must pass [`weight_fits`]. Where `shared`, each subgroup fetches
/// dy's texels once.
pub(super) fn weight_grad_packed(
    x: &Tensor,
    dy: &PackedDy,
    g: &ConvGeometry,
    shared: bool,
) -> Result<Tensor> {
    let Some((rows, ranges)) = weight_ranges(g) else {
        return Err(Error::Limit {
            what: format!("a texture conv2d weight gradient of {g:?}: an output row"),
            limit: "the texture variant's range of pixels per invocation",
            requested: g.ow as u64,
            allowed: DIRECT_RANGE as u64,
        });
    };
    let gpu = x.gpu();
    let lay = layout(gpu, g.n, g.c, g.h, g.w, g.padding);
    let mut p = params(g, false, lay, g.padding);
    let u = |v: usize| v as u32;
    p.o4 = u(dy.lay[0]);
    p.dy_per_page = u(dy.lay[3]);
    p.dy_margin = u(dy.margin);
    p.rows = u(rows);
    p.ranges = u(ranges);
    let tx = pack_input(x, &p, lay)?;
    let taps = g.c * g.kh * g.kw;
    let parts = Tensor::uninit(gpu, &[ranges, g.o * taps])?;
    let gemm = gemm_kernel(gpu, "weight", shared)?;
    // texture_subgroup pads each range's column blocks to whole subgroups.
    let align = if shared { SUBGROUP as usize } else { 1 };
    let tblocks = (g.kh * g.kw * g.c.div_ceil(4))
        .div_ceil(4)
        .next_multiple_of(align);
    // texture_subgroup: 32 output channels per lane where that pads the
    // output channels no further than 16 (dy's texels are shared, so the
    // x fetches are what the wider block amortises). On the Fashion-MNIST
    // step (AMD EPYC Zen 5, four alternating runs) the weight gradient
    // went from 0.57-0.62 to 0.51-0.56 s per two steps.
    let wide = shared && g.o.next_multiple_of(32) == g.o.next_multiple_of(16);
    let d = [
        (ranges * tblocks).div_ceil(8),
        g.o.div_ceil(if wide { 32 } else { 16 }),
        1,
    ];
    let what = || format!("a texture conv2d weight gradient of {g:?}");
    let d = within_limits(gpu, what, d)?;
    let bindings = [
        Binding::texture(1, &tx.view),
        Binding::texture(5, &dy.tex.view),
        parts.binding(6),
    ];
    let constants = [
        ("BLOCK_ALIGN", align as f64),
        ("DW_WIDE", wide as u32 as f64),
    ];
    dispatch(gpu, &gemm, &constants, &p, &bindings, d)?;
    let dw = if ranges == 1 {
        parts
    } else {
        crate::kernels::reduce::sum_axis(&parts, 0)?
    };
    dw.reshape(&[g.o, g.c, g.kh, g.kw])
}
