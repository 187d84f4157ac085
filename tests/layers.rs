//! Normalisation, pooling, linear and activation ops on the tape against f64
//! references: forward element by element, gradients against central
//! differences of the reference, at odd shapes.

mod common;
#[path = "common/layers.rs"]
mod layers;

use common::*;
use darkmatter::kernels::norm;
use darkmatter::kernels::pool::PoolWindow;
use darkmatter::{BatchNormState, Tape, Tensor, Var};
use layers::{dot, numeric_grad, to_f64};

/// Records `f` on a tape over parameters `inputs`, takes L = sum(f(..) * r)
/// with a random r, and checks the output against `reference` and every
/// input's gradient against central differences of `reference`.
fn check(
    what: &str,
    inputs: &[(Vec<f32>, Vec<usize>)],
    f: impl Fn(&mut Tape, &[Var]) -> Var,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    tol: f64,
) {
    let mut tape = Tape::new(gpu());
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(d, s)| tape.param(&upload(d, s)).unwrap())
        .collect();
    let y = f(&mut tape, &vars);
    let shape = tape.shape(y).unwrap().to_vec();
    let x64: Vec<Vec<f64>> = inputs.iter().map(|(d, _)| to_f64(d)).collect();
    let want = reference(&x64);
    assert_close(
        &tape.value(y).unwrap().to_vec().unwrap(),
        &want,
        tol,
        tol,
        &format!("{what} forward"),
    );

    let mut rng = Rng::new(99);
    let r = rng.vec(want.len(), -1.0, 1.0);
    let r64 = to_f64(&r);
    let rv = tape.constant(&upload(&r, &shape)).unwrap();
    let l = tape.mul(y, rv).unwrap();
    let l = tape.sum_all(l).unwrap();
    let grads = tape.backward(l).unwrap();
    for (i, v) in vars.iter().enumerate() {
        let want = numeric_grad(&x64[i], |xi| {
            let mut all = x64.clone();
            all[i] = xi.to_vec();
            dot(&reference(&all), &r64)
        });
        let got = grads.get(*v).unwrap().to_vec().unwrap();
        assert_close(&got, &want, tol, tol, &format!("{what} d/d input {i}"));
    }
}

fn random(seed: u64, shape: &[usize], lo: f32, hi: f32) -> (Vec<f32>, Vec<usize>) {
    let n = shape.iter().product();
    (Rng::new(seed).vec(n, lo, hi), shape.to_vec())
}

fn bn_state(c: usize) -> (Tensor, Tensor) {
    (
        Tensor::zeros(gpu(), &[c]).unwrap(),
        Tensor::full(gpu(), &[c], 1.0).unwrap(),
    )
}

#[test]
fn batch_norm_2d_training_affine() {
    // Planes of 12 and of 99 values (the L override constant), odd sizes.
    for (n, c, h, w) in [(3, 5, 3, 4), (2, 3, 9, 11)] {
        batch_norm_2d_training_affine_at(n, c, h, w);
    }
}

fn batch_norm_2d_training_affine_at(n: usize, c: usize, h: usize, w: usize) {
    let (rm, rv) = bn_state(c);
    let st = BatchNormState {
        running_mean: &rm,
        running_var: &rv,
        momentum: 0.1,
        eps: 1e-5,
    };
    let x = random(1, &[n, c, h, w], -2.0, 3.0);
    check(
        "batch_norm 2d train",
        &[
            x.clone(),
            random(2, &[c], 0.5, 1.5),
            random(3, &[c], -1.0, 1.0),
        ],
        |t, v| t.batch_norm(v[0], Some((v[1], v[2])), &st, true).unwrap(),
        |a| layers::batch_norm_train(&a[0], n, c, h * w, Some((&a[1], &a[2]))).0,
        2e-4,
    );
    // One forward ran (the backward does not touch the running estimates):
    // r = 0.9 r + 0.1 batch, with the unbiased variance.
    let (_, mean, var) = layers::batch_norm_train(&to_f64(&x.0), n, c, h * w, None);
    let count = (n * h * w) as f64;
    let want_rm: Vec<f64> = mean.iter().map(|m| 0.1 * m).collect();
    let want_rv: Vec<f64> = var
        .iter()
        .map(|v| 0.9 + 0.1 * v * count / (count - 1.0))
        .collect();
    assert_close(&rm.to_vec().unwrap(), &want_rm, 1e-5, 1e-6, "running_mean");
    assert_close(&rv.to_vec().unwrap(), &want_rv, 1e-5, 1e-6, "running_var");
}

#[test]
fn batch_norm_1d_training_without_affine() {
    let (n, c) = (7, 5);
    let (rm, rv) = bn_state(c);
    let st = BatchNormState {
        running_mean: &rm,
        running_var: &rv,
        momentum: 0.1,
        eps: 1e-5,
    };
    check(
        "batch_norm 1d train, no affine",
        &[random(4, &[n, c], -1.0, 2.0)],
        |t, v| t.batch_norm(v[0], None, &st, true).unwrap(),
        |a| layers::batch_norm_train(&a[0], n, c, 1, None).0,
        2e-4,
    );
}

#[test]
fn batch_norm_eval_uses_running_statistics() {
    for (n, c, h, w) in [(2, 3, 3, 5), (2, 3, 7, 9)] {
        batch_norm_eval_at(n, c, h, w);
    }
}

fn batch_norm_eval_at(n: usize, c: usize, h: usize, w: usize) {
    let (m, _) = random(5, &[c], -0.5, 0.5);
    let (v, _) = random(6, &[c], 0.5, 2.0);
    let (rm, rv) = (upload(&m, &[c]), upload(&v, &[c]));
    let st = BatchNormState {
        running_mean: &rm,
        running_var: &rv,
        momentum: 0.1,
        eps: 1e-5,
    };
    let (m64, v64) = (to_f64(&m), to_f64(&v));
    check(
        "batch_norm eval",
        &[
            random(7, &[n, c, h, w], -1.0, 1.0),
            random(8, &[c], 0.5, 1.5),
            random(9, &[c], -1.0, 1.0),
        ],
        |t, vs| {
            t.batch_norm(vs[0], Some((vs[1], vs[2])), &st, false)
                .unwrap()
        },
        |a| layers::batch_norm_apply(&a[0], n, c, h * w, &m64, &v64, Some((&a[1], &a[2]))),
        1e-4,
    );
    assert_eq!(
        rm.to_vec().unwrap(),
        m,
        "eval mode leaves the running mean alone"
    );
}

/// `batch_norm_relu` against relu of the f64 batch norm, and by central
/// differences: training mode with and without the affine transform, and
/// eval mode, at planes of 1, 12 and 99 values.
#[test]
fn batch_norm_relu_is_relu_of_batch_norm() {
    for (n, c, h, w) in [(3, 5, 3, 4), (2, 3, 9, 11), (9, 6, 1, 1)] {
        let l = h * w;
        let shape = if l == 1 { vec![n, c] } else { vec![n, c, h, w] };
        let (rm, rv) = bn_state(c);
        let st = BatchNormState {
            running_mean: &rm,
            running_var: &rv,
            momentum: 0.1,
            eps: 1e-5,
        };
        let x = random(11, &shape, -2.0, 3.0);
        let (gamma, beta) = (random(12, &[c], 0.5, 1.5), random(13, &[c], -1.0, 1.0));
        check(
            &format!("batch_norm_relu train {shape:?}"),
            &[x.clone(), gamma.clone(), beta.clone()],
            |t, v| {
                t.batch_norm_relu(v[0], Some((v[1], v[2])), &st, true)
                    .unwrap()
            },
            |a| layers::relu(&layers::batch_norm_train(&a[0], n, c, l, Some((&a[1], &a[2]))).0),
            2e-4,
        );
        check(
            &format!("batch_norm_relu train, no affine {shape:?}"),
            std::slice::from_ref(&x),
            |t, v| t.batch_norm_relu(v[0], None, &st, true).unwrap(),
            |a| layers::relu(&layers::batch_norm_train(&a[0], n, c, l, None).0),
            2e-4,
        );
        // Eval mode with running estimates of the sort training leaves.
        let (m, _) = random(14, &[c], -0.5, 0.5);
        let (v, _) = random(15, &[c], 0.5, 2.0);
        let (em, ev) = (upload(&m, &[c]), upload(&v, &[c]));
        let st = BatchNormState {
            running_mean: &em,
            running_var: &ev,
            momentum: 0.1,
            eps: 1e-5,
        };
        let (m64, v64) = (to_f64(&m), to_f64(&v));
        check(
            &format!("batch_norm_relu eval {shape:?}"),
            &[x.clone(), gamma, beta],
            |t, vs| {
                t.batch_norm_relu(vs[0], Some((vs[1], vs[2])), &st, false)
                    .unwrap()
            },
            |a| {
                let y = layers::batch_norm_apply(&a[0], n, c, l, &m64, &v64, Some((&a[1], &a[2])));
                layers::relu(&y)
            },
            1e-4,
        );
    }
}

fn layer_norm_ref(x: &[f64], g: &[f64], b: &[f64]) -> Vec<f64> {
    let d = g.len();
    x.chunks(d)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let rs = 1.0 / (var + 1e-5).sqrt();
            row.iter()
                .enumerate()
                .map(move |(j, v)| (v - mean) * rs * g[j] + b[j])
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layer_norm_over_last_dimension() {
    let d = 7;
    check(
        "layer_norm",
        &[
            random(10, &[2, 3, d], -2.0, 2.0),
            random(11, &[d], 0.5, 1.5),
            random(12, &[d], -1.0, 1.0),
        ],
        |t, v| t.layer_norm(v[0], v[1], v[2], 1e-5).unwrap(),
        |a| layer_norm_ref(&a[0], &a[1], &a[2]),
        2e-4,
    );
}

/// Max (or mean) over square windows, padding excluded from the max and
/// counted as zeros in the mean.
fn pool_ref(x: &[f64], shape: [usize; 4], win: PoolWindow, max: bool) -> Vec<f64> {
    let [n, c, h, w] = shape;
    let (k, s, p) = (win.kernel, win.stride, win.padding);
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut y = Vec::new();
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let vals: Vec<f64> = (0..k * k)
                    .filter_map(|t| {
                        let iy = (oy * s + t / k) as isize - p as isize;
                        let ix = (ox * s + t % k) as isize - p as isize;
                        let inside = iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize;
                        inside.then(|| x[plane * h * w + iy as usize * w + ix as usize])
                    })
                    .collect();
                y.push(if max {
                    vals.iter().cloned().fold(f64::MIN, f64::max)
                } else {
                    vals.iter().sum::<f64>() / (k * k) as f64
                });
            }
        }
    }
    y
}

#[test]
fn max_and_avg_pool() {
    let shape = [3, 5, 9, 7];
    for win in [
        PoolWindow {
            kernel: 3,
            stride: 2,
            padding: 1,
        },
        PoolWindow {
            kernel: 2,
            stride: 2,
            padding: 0,
        },
        PoolWindow {
            kernel: 3,
            stride: 1,
            padding: 0,
        },
    ] {
        let x = random(13, &shape, -1.0, 1.0);
        check(
            &format!("max_pool2d {win:?}"),
            std::slice::from_ref(&x),
            |t, v| t.max_pool2d(v[0], win).unwrap(),
            |a| pool_ref(&a[0], shape, win, true),
            1e-5,
        );
        check(
            &format!("avg_pool2d {win:?}"),
            &[x],
            |t, v| t.avg_pool2d(v[0], win).unwrap(),
            |a| pool_ref(&a[0], shape, win, false),
            1e-5,
        );
    }
}

#[test]
fn global_avg_pool() {
    check(
        "global_avg_pool",
        &[random(14, &[3, 5, 4, 3], -1.0, 1.0)],
        |t, v| t.global_avg_pool(v[0]).unwrap(),
        |a| layers::row_means(&a[0], 12),
        1e-5,
    );
}

#[test]
fn linear_with_and_without_bias() {
    let (b, i, o) = (5, 7, 4);
    let reference = |a: &[Vec<f64>]| -> Vec<f64> {
        (0..b * o)
            .map(|e| {
                let (r, j) = (e / o, e % o);
                let bias = a.get(2).map_or(0.0, |bv| bv[j]);
                bias + (0..i)
                    .map(|k| a[0][r * i + k] * a[1][j * i + k])
                    .sum::<f64>()
            })
            .collect()
    };
    let (x, w, bias) = (
        random(15, &[b, i], -1.0, 1.0),
        random(16, &[o, i], -1.0, 1.0),
        random(17, &[o], -1.0, 1.0),
    );
    check(
        "linear",
        &[x.clone(), w.clone(), bias],
        |t, v| t.linear(v[0], v[1], Some(v[2])).unwrap(),
        reference,
        1e-4,
    );
    check(
        "linear, no bias",
        &[x, w],
        |t, v| t.linear(v[0], v[1], None).unwrap(),
        reference,
        1e-4,
    );
}

fn erf(x: f64) -> f64 {
    // Series to 1e-16 for |x| < 4: the reference must not share the shader's approximation.
    let mut term = x;
    let mut sum = x;
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn gelu_sigmoid_relu() {
    let x = random(18, &[3, 5, 7], -3.0, 3.0);
    check(
        "gelu",
        std::slice::from_ref(&x),
        |t, v| t.gelu(v[0]).unwrap(),
        |a| {
            a[0].iter()
                .map(|v| v * 0.5 * (1.0 + erf(v / 2f64.sqrt())))
                .collect()
        },
        1e-5,
    );
    check(
        "sigmoid",
        std::slice::from_ref(&x),
        |t, v| t.sigmoid(v[0]).unwrap(),
        |a| a[0].iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        1e-5,
    );
    check(
        "relu",
        &[x],
        |t, v| t.relu(v[0]).unwrap(),
        |a| layers::relu(&a[0]),
        1e-5,
    );
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut tape = Tape::new(gpu());
    let x = tape.param(&upload(&[0.5; 24], &[2, 3, 2, 2])).unwrap();
    let (rm, rv) = bn_state(4);
    let st = BatchNormState {
        running_mean: &rm,
        running_var: &rv,
        momentum: 0.1,
        eps: 1e-5,
    };
    let err = tape.batch_norm(x, None, &st, true).unwrap_err().to_string();
    assert!(err.contains("[2, 3, 2, 2]") && err.contains("[4]"), "{err}");
    // The batch-norm kernels run without bounds checks: the backward checks
    // the statistics and gamma it is handed against x's channels.
    let xt = upload(&[0.5; 24], &[2, 3, 2, 2]);
    let three = upload(&[1.0; 3], &[3]);
    let four = upload(&[1.0; 4], &[4]);
    let stats = |mean: &Tensor, invstd: &Tensor| norm::BatchStats {
        mean: mean.clone(),
        invstd: invstd.clone(),
    };
    for (s, gamma) in [
        (stats(&four, &three), None),
        (stats(&three, &four), None),
        (stats(&three, &three), Some(&four)),
    ] {
        let err = norm::batch_norm_backward(&xt, &xt, &s, gamma, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[3]") && err.contains("[4]"), "{err}");
    }
    assert!(
        norm::batch_norm_backward(&xt, &xt, &stats(&three, &three), Some(&three), true).is_ok()
    );
    // The fused relu's backward checks beta too.
    let bad = Some((&three, &four));
    let err = norm::batch_norm_relu_backward(&xt, &xt, &stats(&three, &three), bad, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[3]") && err.contains("[4]"), "{err}");
    // One channel of more values than the statistics' loops may take
    // (65 535 iterations of 256): a typed error, not a sum cut short.
    let big = Tensor::zeros(gpu(), &[65_535 * 256 + 1, 1]).unwrap();
    let (rm1, rv1) = bn_state(1);
    for relu in [false, true] {
        let forward = if relu {
            norm::batch_norm_relu
        } else {
            norm::batch_norm
        };
        let err = forward(&big, None, &rm1, &rv1, true, 0.1, 1e-5).unwrap_err();
        assert!(matches!(err, darkmatter::Error::Limit { .. }), "{err}");
    }
    let win = PoolWindow {
        kernel: 3,
        stride: 1,
        padding: 0,
    };
    let err = tape.max_pool2d(x, win).unwrap_err().to_string();
    assert!(err.contains("3x3 window"), "{err}");
    let bad = PoolWindow {
        kernel: 2,
        stride: 1,
        padding: 2,
    };
    assert!(tape.avg_pool2d(x, bad).is_err());
}
