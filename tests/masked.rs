//! The masked reconstruction loss against an f64 reference written from
//! its definition, with and without per-patch normalisation of the target:
//! the loss, the gradient by central differences, fused against unfused,
//! and a gradient that is exactly zero on every visible patch.

mod common;
#[path = "common/layers.rs"]
mod layers;

use common::*;
use darkmatter::Tape;
use darkmatter::loss::{LossVariant, masked_mse};
use layers::{numeric_grad, to_f64};

struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    patch: usize,
}

fn reference(s: &Case, pred: &[f64], target: &[f64], mask: &[f64], norm: bool) -> f64 {
    let (gh, gw) = (s.h / s.patch, s.w / s.patch);
    let per = (s.c * s.patch * s.patch) as f64;
    let mut total = 0.0;
    let mut masked = 0.0;
    for n in 0..s.n {
        for py in 0..gh {
            for px in 0..gw {
                if mask[(n * gh + py) * gw + px] < 0.5 {
                    continue;
                }
                masked += 1.0;
                let idx: Vec<usize> = (0..s.c)
                    .flat_map(|c| {
                        (0..s.patch).flat_map(move |y| {
                            (0..s.patch).map(move |x| {
                                ((n * s.c + c) * s.h + py * s.patch + y) * s.w + px * s.patch + x
                            })
                        })
                    })
                    .collect();
                let (mean, inv) = if norm {
                    let m = idx.iter().map(|&i| target[i]).sum::<f64>() / per;
                    let v = idx.iter().map(|&i| (target[i] - m).powi(2)).sum::<f64>() / (per - 1.0);
                    (m, 1.0 / (v + 1e-6).sqrt())
                } else {
                    (0.0, 1.0)
                };
                total += idx
                    .iter()
                    .map(|&i| (pred[i] - (target[i] - mean) * inv).powi(2))
                    .sum::<f64>()
                    / per;
            }
        }
    }
    if masked == 0.0 { 0.0 } else { total / masked }
}

fn check(s: Case, norm: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let shape = [s.n, s.c, s.h, s.w];
    let count = s.n * s.c * s.h * s.w;
    let (gh, gw) = (s.h / s.patch, s.w / s.patch);
    let pred = rng.vec(count, -1.0, 1.0);
    let target = rng.vec(count, -1.0, 1.0);
    let mask: Vec<f32> = (0..s.n * gh * gw)
        .map(|i| ((i * 7 + 3) % 5 < 3) as u32 as f32)
        .collect();
    let masked = mask.iter().filter(|&&m| m > 0.5).count();
    let (p64, t64, m64) = (to_f64(&pred), to_f64(&target), to_f64(&mask));
    let want = reference(&s, &p64, &t64, &m64, norm);
    let want_grad = numeric_grad(&p64, |p| reference(&s, p, &t64, &m64, norm));
    let mut grads = Vec::new();
    for v in LossVariant::ALL {
        let mut tape = Tape::new(gpu());
        let pv = tape.param(&upload(&pred, &shape)).unwrap();
        let mask_t = upload(&mask, &[s.n, gh, gw]);
        let l = masked_mse(
            &mut tape,
            pv,
            &upload(&target, &shape),
            &mask_t,
            masked,
            s.patch,
            norm,
            v,
        )
        .unwrap();
        let what = format!("{} norm={norm} {:?}", v.name(), shape);
        let got = tape.value(l).unwrap().item().unwrap();
        assert_close(&[got], &[want], 1e-4, 1e-6, &format!("{what}: loss"));
        let g = tape.backward(l).unwrap().get(pv).unwrap().to_vec().unwrap();
        assert_close(&g, &want_grad, 1e-3, 1e-5, &format!("{what}: gradient"));
        grads.push(g);
    }
    // Fused: exactly zero on every visible patch.
    for (i, &g) in grads[0].iter().enumerate() {
        let (y, x) = ((i / s.w) % s.h, i % s.w);
        let n = i / (s.c * s.h * s.w);
        if mask[(n * gh + y / s.patch) * gw + x / s.patch] < 0.5 {
            assert_eq!(g, 0.0, "element {i} of a visible patch");
        }
    }
    let scale = grads[1].iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    assert_close(
        &grads[0],
        &to_f64(&grads[1]),
        1e-4,
        1e-4 * scale,
        "fused against unfused",
    );
}

#[test]
fn matches_reference_with_and_without_norm_pix() {
    check(
        Case {
            n: 3,
            c: 2,
            h: 12,
            w: 8,
            patch: 4,
        },
        true,
        1,
    );
    check(
        Case {
            n: 3,
            c: 2,
            h: 12,
            w: 8,
            patch: 4,
        },
        false,
        2,
    );
    check(
        Case {
            n: 2,
            c: 3,
            h: 9,
            w: 15,
            patch: 3,
        },
        true,
        3,
    );
    check(
        Case {
            n: 5,
            c: 1,
            h: 7,
            w: 7,
            patch: 7,
        },
        true,
        4,
    );
}

#[test]
fn bad_shapes_are_typed_errors() {
    let mut tape = Tape::new(gpu());
    let p = tape
        .param(&upload(&[0.5; 2 * 9 * 9], &[2, 1, 9, 9]))
        .unwrap();
    let t = upload(&[0.5; 2 * 9 * 9], &[2, 1, 9, 9]);
    let m = upload(&[1.0; 2 * 9], &[2, 3, 3]);
    let e = masked_mse(&mut tape, p, &t, &m, 18, 4, true, LossVariant::Fused).unwrap_err();
    assert!(
        e.to_string()
            .contains("a patch of 4 pixels does not divide the 9x9 images"),
        "{e}"
    );
    let wrong = upload(&[1.0; 2 * 4], &[2, 2, 2]);
    let e = masked_mse(&mut tape, p, &t, &wrong, 8, 3, true, LossVariant::Fused).unwrap_err();
    assert!(
        e.to_string()
            .contains("the mask must be [N, H / patch, W / patch]"),
        "{e}"
    );
}
