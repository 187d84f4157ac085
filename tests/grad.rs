//! Gradient checks for every backward rule on the tape.
//!
//! Each case builds L = sum(f(inputs) * R) with random inputs and random
//! weights R, then checks three things:
//! 1. the GPU forward against an f64 CPU reference of f;
//! 2. the tape's gradients against central differences of that f64
//!    reference (eps 1e-5: accurate to ~1e-9, so the tolerance is tight);
//! 3. the tape's gradients against central differences of the GPU forward
//!    itself (f32, so a looser tolerance), at a sample of coordinates.

mod common;
use common::*;
use darkmatter::{Result, Tape, Tensor, Var};

type Build = dyn Fn(&mut Tape, &[Var]) -> Result<Var>;
type Reference = dyn Fn(&[Vec<f64>]) -> Vec<f64>;

struct Case<'a> {
    name: &'a str,
    inputs: Vec<(Vec<usize>, Vec<f32>)>,
    build: &'a Build,
    reference: &'a Reference,
}

fn gpu_loss(case: &Case, data: &[Vec<f32>], r: &Tensor) -> f64 {
    let mut tape = Tape::new(gpu());
    let vars: Vec<Var> = case
        .inputs
        .iter()
        .zip(data)
        .map(|((s, _), d)| tape.constant(&upload(d, s)).unwrap())
        .collect();
    let out = (case.build)(&mut tape, &vars).unwrap();
    let r = tape.constant(r).unwrap();
    let weighted = tape.mul(out, r).unwrap();
    let loss = tape.sum_all(weighted).unwrap();
    tape.value(loss).unwrap().item().unwrap() as f64
}

fn check(case: Case) {
    let mut rng = Rng::new(case.name.len() as u64 * 7919);
    let mut tape = Tape::new(gpu());
    let params: Vec<Var> = case
        .inputs
        .iter()
        .map(|(s, d)| tape.param(&upload(d, s)).unwrap())
        .collect();
    let out = (case.build)(&mut tape, &params).unwrap();
    let out_shape = tape.shape(out).unwrap().to_vec();
    let got_out = tape.value(out).unwrap().to_vec().unwrap();

    // 1. Forward against the f64 reference.
    let as_f64: Vec<Vec<f64>> = case
        .inputs
        .iter()
        .map(|(_, d)| d.iter().map(|&v| v as f64).collect())
        .collect();
    let want_out = (case.reference)(&as_f64);
    assert_close(
        &got_out,
        &want_out,
        1e-5,
        1e-5,
        &format!("{}: forward", case.name),
    );

    let r_data = rng.vec(got_out.len(), -1.0, 1.0);
    let r_tensor = upload(&r_data, &out_shape);
    let r = tape.constant(&r_tensor).unwrap();
    let weighted = tape.mul(out, r).unwrap();
    let loss = tape.sum_all(weighted).unwrap();
    let grads = tape.backward(loss).unwrap();

    let ref_loss = |x: &[Vec<f64>]| -> f64 {
        (case.reference)(x)
            .iter()
            .zip(&r_data)
            .map(|(o, &w)| o * w as f64)
            .sum()
    };
    for (k, (shape, data)) in case.inputs.iter().enumerate() {
        let g = grads.get(params[k]).expect("gradient of a parameter");
        assert_eq!(g.shape(), shape.as_slice(), "{}: grad shape", case.name);
        let g = g.to_vec().unwrap();

        // 2. Against central differences of the f64 reference.
        let mut want = Vec::with_capacity(data.len());
        for i in 0..data.len() {
            let mut x = as_f64.clone();
            let eps = 1e-5;
            x[k][i] += eps;
            let up = ref_loss(&x);
            x[k][i] -= 2.0 * eps;
            let down = ref_loss(&x);
            want.push((up - down) / (2.0 * eps));
        }
        assert_close(
            &g,
            &want,
            1e-4,
            1e-4,
            &format!("{}: d/dinput{k} vs f64", case.name),
        );

        // 3. Against central differences of the GPU forward (f32).
        let coords: Vec<usize> = if data.len() <= 6 {
            (0..data.len()).collect()
        } else {
            (0..6)
                .map(|_| (rng.next_u64() % data.len() as u64) as usize)
                .collect()
        };
        for i in coords {
            let eps = 1e-2f32;
            let mut d: Vec<Vec<f32>> = case.inputs.iter().map(|(_, d)| d.clone()).collect();
            d[k][i] += eps;
            let up = gpu_loss(&case, &d, &r_tensor);
            d[k][i] -= 2.0 * eps;
            let down = gpu_loss(&case, &d, &r_tensor);
            let fd = (up - down) / (2.0 * eps as f64);
            // A difference this wide is itself off where f is not smooth at
            // this scale (a relu kink in reach): allow what the same
            // difference of the f64 reference is off by.
            let mut x = as_f64.clone();
            x[k][i] = data[i] as f64 + eps as f64;
            let ref_up = ref_loss(&x);
            x[k][i] = data[i] as f64 - eps as f64;
            let ref_fd = (ref_up - ref_loss(&x)) / (2.0 * eps as f64);
            let slack = (ref_fd - want[i]).abs();
            let err = (g[i] as f64 - fd).abs();
            assert!(
                err <= 2e-2 * fd.abs().max(1.0) + slack,
                "{}: d/dinput{k}[{i}]: tape {} vs GPU finite difference {fd}",
                case.name,
                g[i]
            );
        }
    }
}

fn inputs(
    rng: &mut Rng,
    shapes: &[&[usize]],
    lo: f32,
    hi: f32,
    signed: bool,
) -> Vec<(Vec<usize>, Vec<f32>)> {
    shapes
        .iter()
        .map(|s| {
            let n = s.iter().product();
            let d = if signed {
                rng.away_from_zero(n, lo, hi)
            } else {
                rng.vec(n, lo, hi)
            };
            (s.to_vec(), d)
        })
        .collect()
}

/// Reference for a broadcasting binary op over the output shape `out`.
fn broadcast_ref(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    out: &[usize],
    f: fn(f64, f64) -> f64,
) -> Vec<f64> {
    let n: usize = out.iter().product();
    let index = |shape: &[usize], c: &[usize]| {
        let lead = out.len() - shape.len();
        shape.iter().enumerate().fold(0, |idx, (d, &len)| {
            idx * len + if len == 1 { 0 } else { c[d + lead] }
        })
    };
    (0..n)
        .map(|i| {
            let mut c = vec![0; out.len()];
            let mut r = i;
            for d in (0..out.len()).rev() {
                c[d] = r % out[d];
                r /= out[d];
            }
            f(a[index(sa, &c)], b[index(sb, &c)])
        })
        .collect()
}

#[test]
fn binary_ops_with_broadcasting() {
    let mut rng = Rng::new(11);
    type F = fn(f64, f64) -> f64;
    type Op2 = fn(&mut Tape, Var, Var) -> Result<Var>;
    let ops: [(&str, F, Op2); 4] = [
        ("add", |u, v| u + v, |t, a, b| t.add(a, b)),
        ("sub", |u, v| u - v, |t, a, b| t.sub(a, b)),
        ("mul", |u, v| u * v, |t, a, b| t.mul(a, b)),
        ("div", |u, v| u / v, |t, a, b| t.div(a, b)),
    ];
    let shapes: [(&[usize], &[usize], &[usize]); 3] = [
        (&[3, 5], &[3, 5], &[3, 5]),
        (&[3, 5], &[5], &[3, 5]),
        (&[3, 1], &[2, 1, 4], &[2, 3, 4]),
    ];
    for (name, f, op) in ops {
        for (sa, sb, out) in shapes {
            let ins = inputs(&mut rng, &[sa, sb], 0.5, 2.0, true);
            let (sa, sb, out) = (sa.to_vec(), sb.to_vec(), out.to_vec());
            check(Case {
                name: &format!("{name} {sa:?} {sb:?}"),
                inputs: ins,
                build: &move |t, v| op(t, v[0], v[1]),
                reference: &move |x| broadcast_ref(&x[0], &sa, &x[1], &sb, &out, f),
            });
        }
    }
}

#[test]
fn unary_ops() {
    let mut rng = Rng::new(12);
    type F = fn(f64) -> f64;
    type Op1 = fn(&mut Tape, Var) -> Result<Var>;
    let ops: [(&str, F, Op1, bool); 7] = [
        ("relu", |v| v.max(0.0), |t, a| t.relu(a), true),
        ("exp", f64::exp, |t, a| t.exp(a), true),
        ("log", f64::ln, |t, a| t.log(a), false),
        ("sqrt", f64::sqrt, |t, a| t.sqrt(a), false),
        ("square", |v| v * v, |t, a| t.square(a), true),
        ("scale", |v| -1.5 * v, |t, a| t.scale(a, -1.5), true),
        (
            "add_scalar",
            |v| v + 0.25,
            |t, a| t.add_scalar(a, 0.25),
            true,
        ),
    ];
    for (name, f, op, signed) in ops {
        // Away from relu's kink at 0, and positive for log and sqrt.
        let ins = inputs(&mut rng, &[&[7, 3]], 0.3, 2.0, signed);
        check(Case {
            name,
            inputs: ins,
            build: &move |t, v| op(t, v[0]),
            reference: &move |x| x[0].iter().map(|&v| f(v)).collect(),
        });
    }
}

#[test]
fn reductions() {
    let mut rng = Rng::new(13);
    let shape = [3, 5, 4];
    for axis in 0..3 {
        for mean in [false, true] {
            let ins = inputs(&mut rng, &[&shape], -1.0, 1.0, false);
            check(Case {
                name: &format!("{} axis {axis}", if mean { "mean" } else { "sum" }),
                inputs: ins,
                build: &move |t, v| {
                    if mean {
                        t.mean(v[0], axis)
                    } else {
                        t.sum(v[0], axis)
                    }
                },
                reference: &move |x| {
                    let outer: usize = shape[..axis].iter().product();
                    let inner: usize = shape[axis + 1..].iter().product();
                    let len = shape[axis];
                    let mut out = vec![0f64; outer * inner];
                    for o in 0..outer {
                        for l in 0..len {
                            for i in 0..inner {
                                out[o * inner + i] += x[0][(o * len + l) * inner + i];
                            }
                        }
                    }
                    let div = if mean { len as f64 } else { 1.0 };
                    out.iter().map(|v| v / div).collect()
                },
            });
        }
    }
    for mean in [false, true] {
        let ins = inputs(&mut rng, &[&[5, 7]], -1.0, 1.0, false);
        check(Case {
            name: if mean { "mean_all" } else { "sum_all" },
            inputs: ins,
            build: &move |t, v| {
                if mean {
                    t.mean_all(v[0])
                } else {
                    t.sum_all(v[0])
                }
            },
            reference: &move |x| {
                let s: f64 = x[0].iter().sum();
                vec![if mean { s / 35.0 } else { s }]
            },
        });
    }
}

#[test]
fn transpose_and_reshape() {
    let mut rng = Rng::new(14);
    let ins = inputs(&mut rng, &[&[2, 3, 5]], -1.0, 1.0, false);
    check(Case {
        name: "transpose",
        inputs: ins,
        build: &|t, v| t.transpose(v[0]),
        reference: &|x| {
            let mut out = vec![0f64; 30];
            for b in 0..2 {
                for i in 0..3 {
                    for j in 0..5 {
                        out[b * 15 + j * 3 + i] = x[0][b * 15 + i * 5 + j];
                    }
                }
            }
            out
        },
    });
    let ins = inputs(&mut rng, &[&[2, 3, 5]], -1.0, 1.0, false);
    check(Case {
        name: "reshape",
        inputs: ins,
        build: &|t, v| t.reshape(v[0], &[5, 6]),
        reference: &|x| x[0].clone(),
    });
}

#[test]
fn matmul_in_every_layout() {
    let mut rng = Rng::new(15);
    let (m, n, k) = (5, 7, 3);
    for ta in [false, true] {
        for tb in [false, true] {
            let sa: &[usize] = if ta { &[k, m] } else { &[m, k] };
            let sb: &[usize] = if tb { &[n, k] } else { &[k, n] };
            let ins = inputs(&mut rng, &[sa, sb], -1.0, 1.0, false);
            check(Case {
                name: &format!("matmul ta={ta} tb={tb}"),
                inputs: ins,
                build: &move |t, v| t.matmul(v[0], v[1], ta, tb),
                reference: &move |x| {
                    let a: Vec<f32> = x[0].iter().map(|&v| v as f32).collect();
                    let b: Vec<f32> = x[1].iter().map(|&v| v as f32).collect();
                    // The f64 reference must see the exact perturbed values.
                    let mut c = vec![0f64; m * n];
                    for i in 0..m {
                        for kk in 0..k {
                            let av = if ta {
                                x[0][kk * m + i]
                            } else {
                                x[0][i * k + kk]
                            };
                            for j in 0..n {
                                let bv = if tb {
                                    x[1][j * k + kk]
                                } else {
                                    x[1][kk * n + j]
                                };
                                c[i * n + j] += av * bv;
                            }
                        }
                    }
                    let _ = (a, b);
                    c
                },
            });
        }
    }
}

#[test]
fn batched_matmul_with_a_shared_operand() {
    let mut rng = Rng::new(16);
    let (batch, m, n, k) = (3, 4, 5, 2);
    let ins = inputs(&mut rng, &[&[batch, m, k], &[k, n]], -1.0, 1.0, false);
    check(Case {
        name: "batched matmul",
        inputs: ins,
        build: &|t, v| t.matmul(v[0], v[1], false, false),
        reference: &move |x| {
            let mut c = vec![0f64; batch * m * n];
            for b in 0..batch {
                for i in 0..m {
                    for kk in 0..k {
                        for j in 0..n {
                            c[(b * m + i) * n + j] += x[0][(b * m + i) * k + kk] * x[1][kk * n + j];
                        }
                    }
                }
            }
            c
        },
    });
}

#[test]
fn a_small_mlp_end_to_end() {
    // relu(x W1 + b1) W2, the shape of a projector layer, through the tape.
    let mut rng = Rng::new(17);
    let (n, d, h, o) = (6, 5, 9, 3);
    let ins = inputs(&mut rng, &[&[n, d], &[d, h], &[h], &[h, o]], 0.1, 1.0, true);
    check(Case {
        name: "mlp",
        inputs: ins,
        build: &|t, v| {
            let z = t.matmul(v[0], v[1], false, false)?;
            let z = t.add(z, v[2])?;
            let z = t.relu(z)?;
            t.matmul(z, v[3], false, false)
        },
        reference: &move |x| {
            let mut out = vec![0f64; n * o];
            for i in 0..n {
                let hidden: Vec<f64> = (0..h)
                    .map(|j| {
                        let s: f64 = (0..d).map(|kk| x[0][i * d + kk] * x[1][kk * h + j]).sum();
                        (s + x[2][j]).max(0.0)
                    })
                    .collect();
                for c in 0..o {
                    out[i * o + c] = (0..h).map(|j| hidden[j] * x[3][j * o + c]).sum();
                }
            }
            out
        },
    });
}
