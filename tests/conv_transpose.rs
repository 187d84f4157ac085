//! The transposed convolution against an f64 reference written from its
//! definition (each input pixel scatters its weights into the output),
//! and its gradients against central differences of that reference, with
//! every convolution variant, on shapes that fit no tile: strides 1 to 3,
//! output padding, odd kernels and channel counts, PyTorch's decoder shape
//! (k 4, s 2, p 1).

mod common;
#[path = "common/layers.rs"]
mod layers;

use common::*;
use darkmatter::Tape;
use darkmatter::kernels::conv_transpose::TransposeGeometry;
use darkmatter::kernels::conv2d::ConvVariant;
use darkmatter::nn::conv_transpose2d;
use layers::{dot, numeric_grad, to_f64};

/// (n, in, h, w, out, k, stride, padding, output_padding)
type Shape = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const SHAPES: [Shape; 5] = [
    (2, 3, 5, 4, 7, 4, 2, 1, 0),
    (1, 5, 3, 3, 2, 3, 1, 1, 0),
    (2, 2, 4, 3, 3, 3, 2, 1, 1),
    (1, 4, 2, 5, 17, 5, 3, 2, 2),
    (3, 1, 3, 3, 1, 2, 2, 0, 0),
];

/// y[n, o, Y, X] = b[o] + sum over c, ky, kx with Y = iy s - p + ky of
/// x[n, c, iy, ix] w[c, o, ky, kx].
fn reference(s: Shape, x: &[f64], w: &[f64], b: &[f64]) -> (Vec<f64>, [usize; 4]) {
    let (n, cin, h, wd, out, k, st, p, op) = s;
    let oh = (h - 1) * st + k + op - 2 * p;
    let ow = (wd - 1) * st + k + op - 2 * p;
    let mut y = vec![0.0; n * out * oh * ow];
    for ni in 0..n {
        for o in 0..out {
            for i in 0..oh * ow {
                y[(ni * out + o) * oh * ow + i] = b[o];
            }
        }
        for c in 0..cin {
            for iy in 0..h {
                for ix in 0..wd {
                    let v = x[((ni * cin + c) * h + iy) * wd + ix];
                    for o in 0..out {
                        for ky in 0..k {
                            for kx in 0..k {
                                let yy = (iy * st + ky) as isize - p as isize;
                                let xx = (ix * st + kx) as isize - p as isize;
                                if yy < 0 || xx < 0 || yy >= oh as isize || xx >= ow as isize {
                                    continue;
                                }
                                let wi = ((c * out + o) * k + ky) * k + kx;
                                y[((ni * out + o) * oh + yy as usize) * ow + xx as usize] +=
                                    v * w[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, [n, out, oh, ow])
}

fn check(variant: ConvVariant) {
    for (i, s) in SHAPES.into_iter().enumerate() {
        let (n, cin, h, wd, out, k, st, p, op) = s;
        let mut rng = Rng::new(40 + i as u64);
        let xs = [n, cin, h, wd];
        let ws = [cin, out, k, k];
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -1.0, 1.0);
        let b = rng.vec(out, -1.0, 1.0);
        let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
        let (want, ys) = reference(s, &x64, &w64, &b64);
        let g = TransposeGeometry::new(&xs, &ws, st, p, op).unwrap();
        assert_eq!(g.output_shape(), ys);
        let r = rng.vec(want.len(), -1.0, 1.0);
        let r64 = to_f64(&r);

        let mut tape = Tape::new(gpu());
        let (xv, wv, bv) = (
            tape.param(&upload(&x, &xs)).unwrap(),
            tape.param(&upload(&w, &ws)).unwrap(),
            tape.param(&upload(&b, &[out])).unwrap(),
        );
        let y = conv_transpose2d(&mut tape, xv, wv, Some(bv), st, p, op, Some(variant)).unwrap();
        let what = |t: &str| format!("{} {t} {s:?}", variant.name());
        assert_close(
            &tape.value(y).unwrap().to_vec().unwrap(),
            &want,
            1e-4,
            1e-5,
            &what("forward"),
        );
        let rv = tape.constant(&upload(&r, &ys)).unwrap();
        let weighted = tape.mul(y, rv).unwrap();
        let l = tape.sum_all(weighted).unwrap();
        let grads = tape.backward(l).unwrap();
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&reference(s, x, w, b).0, &r64);
        let dx = numeric_grad(&x64, |x| loss(x, &w64, &b64));
        let dw = numeric_grad(&w64, |w| loss(&x64, w, &b64));
        let db = numeric_grad(&b64, |b| loss(&x64, &w64, b));
        assert_close(
            &grads.get(xv).unwrap().to_vec().unwrap(),
            &dx,
            1e-4,
            1e-4,
            &what("dx"),
        );
        assert_close(
            &grads.get(wv).unwrap().to_vec().unwrap(),
            &dw,
            1e-4,
            1e-4,
            &what("dw"),
        );
        assert_close(
            &grads.get(bv).unwrap().to_vec().unwrap(),
            &db,
            1e-4,
            1e-4,
            &what("db"),
        );
    }
}

#[test]
fn direct_matches_reference_and_finite_differences() {
    check(ConvVariant::Direct);
}

#[test]
fn implicit_gemm_matches_reference_and_finite_differences() {
    check(ConvVariant::ImplicitGemm);
}

#[test]
fn im2col_matches_reference_and_finite_differences() {
    check(ConvVariant::Im2col);
}

#[test]
fn texture_matches_reference_and_finite_differences() {
    check(ConvVariant::Texture);
}

#[test]
fn bad_shapes_are_typed_errors() {
    let bad = [
        (
            vec![1, 3, 4, 4],
            vec![2, 5, 3, 3],
            1,
            1,
            0,
            "the input has 3 channels but the weight expects 2",
        ),
        (
            vec![1, 2, 4, 4],
            vec![2, 5, 3, 3],
            2,
            1,
            2,
            "output_padding below it",
        ),
        (
            vec![1, 2, 1, 1],
            vec![2, 5, 1, 1],
            1,
            3,
            0,
            "removes the whole output",
        ),
        (vec![2, 4, 4], vec![2, 5, 3, 3], 1, 1, 0, "[N, C_in, H, W]"),
    ];
    for (x, w, s, p, op, needle) in bad {
        let e = TransposeGeometry::new(&x, &w, s, p, op)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{e}");
    }
}
