//! conv2d, every variant, forward and backward, against the f64 reference
//! in tests/common/layers.rs: the forward element by element, the gradients
//! against central differences of the reference forward, at shapes that are
//! not multiples of any tile (odd batch, channels and sizes, stride, padding).

mod common;
#[path = "common/layers.rs"]
mod layers;

use common::*;
use darkmatter::Tape;
use darkmatter::kernels::conv2d::{
    ConvGeometry, ConvPass, ConvVariant, conv2d_backward, conv2d_backward_bias,
    conv2d_backward_input, conv2d_backward_weight, conv2d_with,
};
use darkmatter::{DeviceClass, Error, Gpu, GpuOptions, Tensor};
use layers::{Conv, dot, numeric_grad, to_f64};

const SHAPES: [Conv; 8] = [
    // The odd shape: batch 3, 5 channels, 9x7, stride 2, pad 1.
    Conv {
        n: 3,
        c: 5,
        h: 9,
        w: 7,
        o: 6,
        k: 3,
        stride: 2,
        pad: 1,
    },
    // More output channels than one 16-wide register block.
    Conv {
        n: 2,
        c: 3,
        h: 6,
        w: 5,
        o: 19,
        k: 3,
        stride: 1,
        pad: 1,
    },
    // A 1x1 downsampling shortcut.
    Conv {
        n: 3,
        c: 7,
        h: 5,
        w: 6,
        o: 5,
        k: 1,
        stride: 2,
        pad: 0,
    },
    // Stride larger than the kernel, large padding.
    Conv {
        n: 1,
        c: 2,
        h: 7,
        w: 8,
        o: 3,
        k: 2,
        stride: 3,
        pad: 2,
    },
    // The kernel exactly fills the padded input: one output pixel.
    Conv {
        n: 2,
        c: 3,
        h: 3,
        w: 4,
        o: 4,
        k: 5,
        stride: 1,
        pad: 1,
    },
    // Batch 1, channels that are multiples of neither 4 nor 16 on either
    // side (two and three 16-wide blocks), 30 pixels: not a multiple of 8.
    Conv {
        n: 1,
        c: 17,
        h: 5,
        w: 6,
        o: 33,
        k: 3,
        stride: 1,
        pad: 1,
    },
    // Stride 2 without padding: the input gradient's four stride phases
    // have different sizes, and the last row and column reach no output.
    Conv {
        n: 2,
        c: 4,
        h: 8,
        w: 7,
        o: 5,
        k: 3,
        stride: 2,
        pad: 0,
    },
    // An even kernel at stride 3: phases with one tap, phases with two.
    Conv {
        n: 1,
        c: 3,
        h: 10,
        w: 9,
        o: 2,
        k: 4,
        stride: 3,
        pad: 1,
    },
];

struct Case {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    r: Vec<f32>,
}

fn case(s: Conv, seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let count = |shape: [usize; 4]| shape.iter().product::<usize>();
    Case {
        x: rng.vec(count(s.x_shape()), -1.0, 1.0),
        w: rng.vec(count(s.w_shape()), -1.0, 1.0),
        b: rng.vec(s.o, -1.0, 1.0),
        r: rng.vec(count(s.y_shape()), -1.0, 1.0),
    }
}

fn forward_matches(variant: ConvVariant) {
    for (i, s) in SHAPES.into_iter().enumerate() {
        let c = case(s, i as u64);
        let (x, w, b) = (
            upload(&c.x, &s.x_shape()),
            upload(&c.w, &s.w_shape()),
            upload(&c.b, &[s.o]),
        );
        for bias in [false, true] {
            let y = conv2d_with(variant, &x, &w, bias.then_some(&b), s.stride, s.pad).unwrap();
            assert_eq!(y.shape(), s.y_shape());
            let want = layers::conv2d(
                &s,
                &to_f64(&c.x),
                &to_f64(&c.w),
                bias.then(|| to_f64(&c.b)).as_deref(),
            );
            let what = format!("{} forward {s:?} bias={bias}", variant.name());
            assert_close(&y.to_vec().unwrap(), &want, 1e-4, 1e-5, &what);
        }
    }
}

/// L = sum(conv(x, w) + b) * r): dL/dx, dL/dw, dL/db by central differences.
fn backward_matches(variant: ConvVariant) {
    for (i, s) in SHAPES.into_iter().enumerate() {
        let c = case(s, 100 + i as u64);
        let (x64, w64, b64, r64) = (to_f64(&c.x), to_f64(&c.w), to_f64(&c.b), to_f64(&c.r));
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&layers::conv2d(&s, x, w, Some(b)), &r64);
        let want_dx = numeric_grad(&x64, |x| loss(x, &w64, &b64));
        let want_dw = numeric_grad(&w64, |w| loss(&x64, w, &b64));
        let want_db = numeric_grad(&b64, |b| loss(&x64, &w64, b));

        let (x, w, r) = (
            upload(&c.x, &s.x_shape()),
            upload(&c.w, &s.w_shape()),
            upload(&c.r, &s.y_shape()),
        );
        let what = |g: &str| format!("{} d{g} {s:?}", variant.name());
        let dx = conv2d_backward_input(variant, &r, &w, &s.x_shape(), s.stride, s.pad).unwrap();
        assert_close(&dx.to_vec().unwrap(), &want_dx, 1e-4, 1e-4, &what("x"));
        let dw = conv2d_backward_weight(variant, &x, &r, &s.w_shape(), s.stride, s.pad).unwrap();
        assert_close(&dw.to_vec().unwrap(), &want_dw, 1e-4, 1e-4, &what("w"));
        let db = conv2d_backward_bias(&r).unwrap();
        assert_close(&db.to_vec().unwrap(), &want_db, 1e-4, 1e-4, &what("b"));
        // Both gradients in one call, as the tape asks for them (`texture`
        // packs dy once for both), and each alone.
        let v = Some(variant);
        let (dx, dw) = conv2d_backward(v, v, &x, &w, &r, s.stride, s.pad).unwrap();
        assert_close(
            &dx.unwrap().to_vec().unwrap(),
            &want_dx,
            1e-4,
            1e-4,
            &what("x (both)"),
        );
        assert_close(
            &dw.unwrap().to_vec().unwrap(),
            &want_dw,
            1e-4,
            1e-4,
            &what("w (both)"),
        );
        let (dx, none) = conv2d_backward(v, None, &x, &w, &r, s.stride, s.pad).unwrap();
        assert!(none.is_none(), "{}", what("w not asked for"));
        assert_close(
            &dx.unwrap().to_vec().unwrap(),
            &want_dx,
            1e-4,
            1e-4,
            &what("x (alone)"),
        );
        let (none, dw) = conv2d_backward(None, v, &x, &w, &r, s.stride, s.pad).unwrap();
        assert!(none.is_none(), "{}", what("x not asked for"));
        assert_close(
            &dw.unwrap().to_vec().unwrap(),
            &want_dw,
            1e-4,
            1e-4,
            &what("w (alone)"),
        );
    }
}

#[test]
fn direct_forward_matches_reference() {
    forward_matches(ConvVariant::Direct);
}

#[test]
fn implicit_gemm_forward_matches_reference() {
    forward_matches(ConvVariant::ImplicitGemm);
}

#[test]
fn im2col_forward_matches_reference() {
    forward_matches(ConvVariant::Im2col);
}

#[test]
fn texture_forward_matches_reference() {
    forward_matches(ConvVariant::Texture);
}

#[test]
fn texture_backward_matches_finite_differences() {
    backward_matches(ConvVariant::Texture);
}

/// `texture_subgroup` where the device runs it (lavapipe's Vulkan driver at
/// 256 bits), else a typed error that says why (OpenGL has no subgroups).
fn texture_subgroup_or_error(check: impl FnOnce()) {
    if ConvVariant::TextureSubgroup.available(gpu()) {
        return check();
    }
    let s = SHAPES[0];
    let c = case(s, 7);
    let (x, w) = (upload(&c.x, &s.x_shape()), upload(&c.w, &s.w_shape()));
    let e = conv2d_with(ConvVariant::TextureSubgroup, &x, &w, None, s.stride, s.pad).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("subgroups of exactly 8"), "{e}");
}

#[test]
fn texture_subgroup_forward_matches_reference() {
    texture_subgroup_or_error(|| forward_matches(ConvVariant::TextureSubgroup));
}

#[test]
fn texture_subgroup_backward_matches_finite_differences() {
    texture_subgroup_or_error(|| backward_matches(ConvVariant::TextureSubgroup));
}

/// Sharing fetches moves no FMA: the forward and both gradients are the
/// same bits as `texture`'s, on every odd shape and on a batch whose last
/// workgroup is mostly past the end.
#[test]
fn texture_subgroup_is_texture_bit_for_bit() {
    texture_subgroup_or_error(|| {
        let extra = Conv {
            n: 3,
            c: 19,
            h: 9,
            w: 11,
            o: 37,
            k: 3,
            stride: 2,
            pad: 1,
        };
        // texture_subgroup's 64 channels per lane in the forward and the
        // input gradient, the last block partly past the channels.
        let wide = Conv {
            n: 2,
            c: 45,
            h: 7,
            w: 6,
            o: 100,
            k: 3,
            stride: 2,
            pad: 1,
        };
        for (i, s) in SHAPES.into_iter().chain([extra, wide]).enumerate() {
            let c = case(s, 300 + i as u64);
            let (x, w, b, r) = (
                upload(&c.x, &s.x_shape()),
                upload(&c.w, &s.w_shape()),
                upload(&c.b, &[s.o]),
                upload(&c.r, &s.y_shape()),
            );
            let run = |v| {
                let y = conv2d_with(v, &x, &w, Some(&b), s.stride, s.pad).unwrap();
                let dx = conv2d_backward_input(v, &r, &w, &s.x_shape(), s.stride, s.pad).unwrap();
                let dw = conv2d_backward_weight(v, &x, &r, &s.w_shape(), s.stride, s.pad).unwrap();
                // And both gradients from one packing of dy, as the tape asks.
                let (dx2, dw2) =
                    conv2d_backward(Some(v), Some(v), &x, &w, &r, s.stride, s.pad).unwrap();
                [y, dx, dw, dx2.unwrap(), dw2.unwrap()].map(|t| t.to_vec().unwrap())
            };
            let (plain, shared) = (run(ConvVariant::Texture), run(ConvVariant::TextureSubgroup));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let what = ["forward", "input gradient", "weight gradient", "dx", "dw"];
            for ((p, q), what) in plain.iter().zip(&shared).zip(what) {
                assert!(p.iter().any(|v| *v != 0.0), "{s:?}: a zero {what}");
                assert_eq!(bits(p), bits(q), "{s:?}: {what}");
            }
        }
    });
}

#[test]
fn direct_backward_matches_finite_differences() {
    backward_matches(ConvVariant::Direct);
}

#[test]
fn implicit_gemm_backward_matches_finite_differences() {
    backward_matches(ConvVariant::ImplicitGemm);
}

#[test]
fn im2col_backward_matches_finite_differences() {
    backward_matches(ConvVariant::Im2col);
}

/// A batch large enough that the weight gradient is split into several
/// partial sums over the batch.
#[test]
fn implicit_gemm_weight_gradient_sums_batch_chunks() {
    let s = Conv {
        n: 37,
        c: 2,
        h: 5,
        w: 5,
        o: 3,
        k: 3,
        stride: 1,
        pad: 1,
    };
    dw_matches_direct(gpu(), ConvVariant::ImplicitGemm, s, 7, "chunked dw");
}

/// `variant`'s weight gradient (stride 1, padding 1) against the direct
/// variant's, which `backward_matches` checks against finite differences.
fn dw_matches_direct(on: &Gpu, variant: ConvVariant, s: Conv, seed: u64, what: &str) {
    let c = case(s, seed);
    let x = Tensor::from_slice(on, &c.x, &s.x_shape()).unwrap();
    let r = Tensor::from_slice(on, &c.r, &s.y_shape()).unwrap();
    let got = conv2d_backward_weight(variant, &x, &r, &s.w_shape(), 1, 1).unwrap();
    let want = conv2d_backward_weight(ConvVariant::Direct, &x, &r, &s.w_shape(), 1, 1).unwrap();
    let want = to_f64(&want.to_vec().unwrap());
    assert_close(&got.to_vec().unwrap(), &want, 1e-4, 1e-4, what);
}

/// A weight gradient with enough taps for the `im2col` variant, on a batch
/// whose patch matrix (891 x 72) the `texture` matmul folds into four pages
/// of a device limited to 256-texel textures, against the direct variant.
#[test]
fn im2col_weight_gradient_folds_long_reductions() {
    let s = Conv {
        n: 9,
        c: 8,
        h: 11,
        w: 9,
        o: 21,
        k: 3,
        stride: 1,
        pad: 1,
    };
    let small = Gpu::with_options(GpuOptions {
        max_texture_dimension: Some(256),
        ..GpuOptions::default()
    })
    .unwrap();
    let what = "im2col dw over texture pages";
    dw_matches_direct(&small, ConvVariant::Im2col, s, 11, what);
}

/// The `texture` variant's own weight gradient on a device limited to
/// 64-texel textures: the 9 images of x fold into 2 texture pages, those of
/// dy (packed without margin, so with pages of their own) into 2, and the
/// 5 input channels make 2 channel groups, the second mostly padding.
#[test]
fn texture_weight_gradient_reads_images_across_texture_pages() {
    let s = Conv {
        n: 9,
        c: 5,
        h: 10,
        w: 9,
        o: 12,
        k: 3,
        stride: 1,
        pad: 1,
    };
    let small = Gpu::with_options(GpuOptions {
        max_texture_dimension: Some(64),
        ..GpuOptions::default()
    })
    .unwrap();
    let what = "texture dw over texture pages";
    dw_matches_direct(&small, ConvVariant::Texture, s, 13, what);
}

/// The defaults on CPU adapters: the weight gradient goes through `im2col`
/// while its patch matrix fits a storage binding, and falls back to the
/// implicit GEMM, with the same result, where it does not.
#[test]
fn im2col_is_the_cpu_weight_gradient_while_the_patches_fit() {
    let s = Conv {
        n: 4,
        c: 16,
        h: 8,
        w: 8,
        o: 8,
        k: 3,
        stride: 1,
        pad: 1,
    };
    // The patch matrix: 4 * 64 pixels x 144 taps, 147 456 bytes.
    let g = ConvGeometry::new(&s.x_shape(), &s.w_shape(), 1, 1).unwrap();
    let tight = Gpu::with_options(GpuOptions {
        max_storage_binding: Some(1 << 17),
        ..GpuOptions::default()
    })
    .unwrap();
    let (want_fit, want_tight) = match gpu().class() {
        DeviceClass::Cpu => (ConvVariant::Im2col, ConvVariant::ImplicitGemm),
        DeviceClass::Gpu => (ConvVariant::ImplicitGemm, ConvVariant::ImplicitGemm),
    };
    assert_eq!(
        ConvVariant::default_for(gpu(), &g, ConvPass::WeightGrad),
        want_fit
    );
    assert_eq!(
        ConvVariant::default_for(&tight, &g, ConvPass::WeightGrad),
        want_tight
    );
    let c = case(s, 12);
    let x = Tensor::from_slice(&tight, &c.x, &s.x_shape()).unwrap();
    let r = Tensor::from_slice(&tight, &c.r, &s.y_shape()).unwrap();
    let err = conv2d_backward_weight(ConvVariant::Im2col, &x, &r, &s.w_shape(), 1, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: "max_storage_buffer_binding_size",
                ..
            }
        ),
        "{err}"
    );
    let mut tape = Tape::new(&tight);
    let xv = tape.constant(&x).unwrap();
    let wv = tape
        .param(&Tensor::from_slice(&tight, &c.w, &s.w_shape()).unwrap())
        .unwrap();
    let y = tape.conv2d(xv, wv, None, 1, 1).unwrap();
    let rv = tape.constant(&r).unwrap();
    let l = tape.mul(y, rv).unwrap();
    let l = tape.sum_all(l).unwrap();
    let grads = tape.backward(l).unwrap();
    let want = numeric_grad(&to_f64(&c.w), |w| {
        dot(&layers::conv2d(&s, &to_f64(&c.x), w, None), &to_f64(&c.r))
    });
    assert_close(
        &grads.get(wv).unwrap().to_vec().unwrap(),
        &want,
        1e-4,
        1e-4,
        "dw through the fallback",
    );
}

/// The tape wires the three gradients to the right inputs.
#[test]
fn tape_conv2d_gradients() {
    // Every shape on `texture` (whose two gradients share one packing of
    // dy on the tape), the first shape on every variant.
    let cases = SHAPES.iter().map(|&s| (s, ConvVariant::Texture)).chain(
        ConvVariant::ALL
            .into_iter()
            .filter(|v| v.available(gpu()))
            .map(|v| (SHAPES[0], v)),
    );
    for (i, (s, variant)) in cases.enumerate() {
        let c = case(s, 42 + i as u64);
        let (x64, w64, b64, r64) = (to_f64(&c.x), to_f64(&c.w), to_f64(&c.b), to_f64(&c.r));
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&layers::conv2d(&s, x, w, Some(b)), &r64);
        let mut tape = Tape::new(gpu());
        let x = tape.param(&upload(&c.x, &s.x_shape())).unwrap();
        let w = tape.param(&upload(&c.w, &s.w_shape())).unwrap();
        let b = tape.param(&upload(&c.b, &[s.o])).unwrap();
        let r = tape.constant(&upload(&c.r, &s.y_shape())).unwrap();
        let y = tape
            .conv2d_with(variant, x, w, Some(b), s.stride, s.pad)
            .unwrap();
        let l = tape.mul(y, r).unwrap();
        let l = tape.sum_all(l).unwrap();
        let grads = tape.backward(l).unwrap();
        let got = |v| grads.get(v).unwrap().to_vec().unwrap();
        assert_close(
            &got(x),
            &numeric_grad(&x64, |x| loss(x, &w64, &b64)),
            1e-4,
            1e-4,
            &format!("tape dx {} {s:?}", variant.name()),
        );
        assert_close(
            &got(w),
            &numeric_grad(&w64, |w| loss(&x64, w, &b64)),
            1e-4,
            1e-4,
            &format!("tape dw {} {s:?}", variant.name()),
        );
        assert_close(
            &got(b),
            &numeric_grad(&b64, |b| loss(&x64, &w64, b)),
            1e-4,
            1e-4,
            &format!("tape db {} {s:?}", variant.name()),
        );
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let x = upload(&[0.5; 2 * 3 * 4 * 4], &[2, 3, 4, 4]);
    let w = upload(&[0.5; 4 * 2 * 3 * 3], &[4, 2, 3, 3]);
    let err = conv2d_with(ConvVariant::ImplicitGemm, &x, &w, None, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 channels") && err.contains("[2, 3, 4, 4]") && err.contains("[4, 2, 3, 3]"),
        "{err}"
    );

    let big = upload(&[0.5; 3 * 7 * 7], &[1, 3, 7, 7]);
    let err = conv2d_with(ConvVariant::Direct, &x, &big, None, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("7x7 kernel") && err.contains("6x6 padded input"),
        "{err}"
    );

    let flat = upload(&[0.5; 12], &[3, 4]);
    assert!(conv2d_with(ConvVariant::Direct, &flat, &w, None, 1, 0).is_err());
    let w3 = upload(&[0.5; 4 * 3 * 9], &[4, 3, 3, 3]);
    assert!(conv2d_with(ConvVariant::Direct, &x, &w3, None, 0, 0).is_err());
    let bad_bias = upload(&[0.5; 3], &[3]);
    let err = conv2d_with(ConvVariant::Direct, &x, &w3, Some(&bad_bias), 1, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bias must be [4]"), "{err}");
}

/// Weight gradients of long batch reductions, in every variant, against an
/// f64 reference: 256 images of 16x16 RGB (65 536 products per weight, the
/// synthetic step's first layer) and of 28x28 grey (200 704, Fashion-MNIST's
/// first layer). llvmpipe ends a loop after 65 535 iterations per
/// invocation, so a kernel that loops over the whole batch at once loses
/// the rest without an error.
#[test]
fn weight_gradients_over_long_reductions_stay_accurate() {
    for (c, side) in [(3, 16), (1, 28)] {
        let s = Conv {
            n: 256,
            c,
            h: side,
            w: side,
            o: 32,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let case = case(s, 21);
        let mut want = vec![0f64; s.o * s.c * s.k * s.k];
        for n in 0..s.n {
            for o in 0..s.o {
                for (y, x) in (0..s.oh()).flat_map(|y| (0..s.ow()).map(move |x| (y, x))) {
                    let r = case.r[((n * s.o + o) * s.oh() + y) * s.ow() + x] as f64;
                    for (ci, ky, kx) in (0..s.c).flat_map(|ci| {
                        (0..s.k).flat_map(move |ky| (0..s.k).map(move |kx| (ci, ky, kx)))
                    }) {
                        let (iy, ix) = ((y + ky) as isize - 1, (x + kx) as isize - 1);
                        if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                            continue;
                        }
                        let xv = case.x[((n * s.c + ci) * s.h + iy as usize) * s.w + ix as usize];
                        want[((o * s.c + ci) * s.k + ky) * s.k + kx] += r * xv as f64;
                    }
                }
            }
        }
        let x = upload(&case.x, &s.x_shape());
        let r = upload(&case.r, &s.y_shape());
        let big = want.iter().fold(0.0f64, |a, &w| a.max(w.abs()));
        for v in [
            ConvVariant::Direct,
            ConvVariant::ImplicitGemm,
            ConvVariant::Im2col,
            ConvVariant::Texture,
        ] {
            let got = conv2d_backward_weight(v, &x, &r, &s.w_shape(), 1, 1)
                .unwrap()
                .to_vec()
                .unwrap();
            // f32 sums of 10^5 terms: a few 1e-6 of the largest weight.
            let what = format!("{v:?} dw of 256 x {c} x {side} x {side}");
            assert_close(&got, &want, 0.0, 2e-5 * big, &what);
        }
    }
}
