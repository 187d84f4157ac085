//! The self-supervised losses, fused and unfused, against f64 CPU references
//! written from the formulas, with finite-difference gradient checks on those
//! references, at sizes that are not multiples of any tile, on random and on
//! near-collapsed inputs.

mod common;
use common::*;
use darkmatter::loss::{self, BarlowConfig, InfoNceConfig, LossVariant, VicregConfig, monitors};
use darkmatter::{Error, Gpu, GpuOptions, Tape, Tensor};

#[derive(Clone, Copy, Debug)]
enum Loss {
    Vicreg(VicregConfig),
    InfoNce(InfoNceConfig),
    Barlow(BarlowConfig),
    /// The mean row-wise cosine similarity (BYOL's and SimSiam's loss).
    Cosine,
}

/// The loss, its gradients w.r.t. za and zb and (VICReg) its three terms.
struct Run {
    loss: f32,
    dza: Vec<f32>,
    dzb: Vec<f32>,
    terms: Option<[f32; 3]>,
}

fn run_on(gpu: &Gpu, l: Loss, v: LossVariant, za: &[f32], zb: &[f32], n: usize, d: usize) -> Run {
    let mut tape = Tape::new(gpu);
    let a = tape
        .param(&Tensor::from_slice(gpu, za, &[n, d]).unwrap())
        .unwrap();
    let b = tape
        .param(&Tensor::from_slice(gpu, zb, &[n, d]).unwrap())
        .unwrap();
    let (out, terms) = match l {
        Loss::Vicreg(cfg) => {
            let o = loss::vicreg(&mut tape, a, b, &cfg, v).unwrap();
            let t = [&o.invariance, &o.variance, &o.covariance].map(|t| t.item().unwrap());
            (o.loss, Some(t))
        }
        Loss::InfoNce(cfg) => (loss::infonce(&mut tape, a, b, &cfg, v).unwrap(), None),
        Loss::Barlow(cfg) => (loss::barlow_twins(&mut tape, a, b, &cfg, v).unwrap(), None),
        Loss::Cosine => (loss::cosine_similarity(&mut tape, a, b, v).unwrap(), None),
    };
    let value = tape.value(out).unwrap().item().unwrap();
    let grads = tape.backward(out).unwrap();
    Run {
        loss: value,
        dza: grads.get(a).unwrap().to_vec().unwrap(),
        dzb: grads.get(b).unwrap().to_vec().unwrap(),
        terms,
    }
}

fn run(l: Loss, v: LossVariant, za: &[f32], zb: &[f32], n: usize, d: usize) -> Run {
    run_on(gpu(), l, v, za, zb, n, d)
}

// ---- f64 references, written from the formulas ----

/// Column means and the centred matrix.
fn centre(z: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut out = z.to_vec();
    for j in 0..d {
        let mean = (0..n).map(|i| z[i * d + j]).sum::<f64>() / n as f64;
        (0..n).for_each(|i| out[i * d + j] -= mean);
    }
    out
}

/// (loss, invariance, variance, covariance).
fn vicreg_ref(za: &[f64], zb: &[f64], n: usize, d: usize, c: &VicregConfig) -> [f64; 4] {
    let inv = za.iter().zip(zb).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / (n * d) as f64;
    let (mut var, mut cov) = (0.0, 0.0);
    for z in [za, zb] {
        let zc = centre(z, n, d);
        let entry = |j: usize, k: usize| {
            (0..n).map(|i| zc[i * d + j] * zc[i * d + k]).sum::<f64>() / (n - 1) as f64
        };
        for j in 0..d {
            let std = (entry(j, j) + c.eps as f64).sqrt();
            var += (c.gamma as f64 - std).max(0.0) / d as f64 / 2.0;
            for k in 0..d {
                if k != j {
                    cov += entry(j, k).powi(2) / d as f64;
                }
            }
        }
    }
    let loss = c.invariance_weight as f64 * inv
        + c.variance_weight as f64 * var
        + c.covariance_weight as f64 * cov;
    [loss, inv, var, cov]
}

fn infonce_ref(za: &[f64], zb: &[f64], n: usize, d: usize, tau: f64) -> f64 {
    let rows: Vec<Vec<f64>> = za
        .chunks(d)
        .chain(zb.chunks(d))
        .map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(|v| v / norm).collect()
        })
        .collect();
    let sim = |i: usize, j: usize| -> f64 {
        rows[i]
            .iter()
            .zip(&rows[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / tau
    };
    let mut total = 0.0;
    for i in 0..2 * n {
        let pos = if i < n { i + n } else { i - n };
        let lse = (0..2 * n)
            .filter(|&j| j != i)
            .map(|j| sim(i, j).exp())
            .sum::<f64>()
            .ln();
        total += lse - sim(i, pos);
    }
    total / (2 * n) as f64
}

fn barlow_ref(za: &[f64], zb: &[f64], n: usize, d: usize, c: &BarlowConfig) -> f64 {
    let bn = |z: &[f64]| {
        let mut x = centre(z, n, d);
        for j in 0..d {
            let var = (0..n).map(|i| x[i * d + j].powi(2)).sum::<f64>() / n as f64;
            let std = (var + c.eps as f64).sqrt();
            (0..n).for_each(|i| x[i * d + j] /= std);
        }
        x
    };
    let (xa, xb) = (bn(za), bn(zb));
    let mut loss = 0.0;
    for i in 0..d {
        for j in 0..d {
            let cij = (0..n).map(|k| xa[k * d + i] * xb[k * d + j]).sum::<f64>() / n as f64;
            loss += if i == j {
                (1.0 - cij).powi(2)
            } else {
                c.lambda as f64 * cij * cij
            };
        }
    }
    loss
}

/// mean_i (p_i . z_i) / (|p_i| |z_i|).
fn cosine_ref(p: &[f64], z: &[f64], n: usize, d: usize) -> f64 {
    (0..n)
        .map(|i| {
            let (a, b) = (&p[i * d..(i + 1) * d], &z[i * d..(i + 1) * d]);
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / (na * nb)
        })
        .sum::<f64>()
        / n as f64
}

fn reference(l: Loss, za: &[f64], zb: &[f64], n: usize, d: usize) -> f64 {
    match l {
        Loss::Vicreg(c) => vicreg_ref(za, zb, n, d, &c)[0],
        Loss::InfoNce(c) => infonce_ref(za, zb, n, d, c.temperature as f64),
        Loss::Barlow(c) => barlow_ref(za, zb, n, d, &c),
        Loss::Cosine => cosine_ref(za, zb, n, d),
    }
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Checks a run against the reference: the loss, and the gradient at
/// `coords` (indices into za then zb) by central differences of the f64
/// reference.
fn check_against_reference(
    l: Loss,
    r: &Run,
    (za, zb): (&[f32], &[f32]),
    n: usize,
    d: usize,
    coords: &[usize],
    what: &str,
) {
    let (a, b) = (to64(za), to64(zb));
    let want = reference(l, &a, &b, n, d);
    assert_close(&[r.loss], &[want], 2e-4, 1e-6, &format!("{what}: loss"));
    if let (Loss::Vicreg(c), Some(t)) = (l, r.terms) {
        let w = vicreg_ref(&a, &b, n, d, &c);
        assert_close(&t, &w[1..], 2e-4, 1e-6, &format!("{what}: terms"));
    }
    let h = 1e-5;
    let mut got = Vec::new();
    let mut fd = Vec::new();
    for &c in coords {
        let (mut ap, mut bp) = (a.clone(), b.clone());
        let (mut am, mut bm) = (a.clone(), b.clone());
        if c < n * d {
            ap[c] += h;
            am[c] -= h;
            got.push(r.dza[c]);
        } else {
            bp[c - n * d] += h;
            bm[c - n * d] -= h;
            got.push(r.dzb[c - n * d]);
        }
        fd.push((reference(l, &ap, &bp, n, d) - reference(l, &am, &bm, n, d)) / (2.0 * h));
    }
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(
        &got,
        &fd,
        2e-3,
        2e-4 * scale + 1e-7,
        &format!("{what}: gradient"),
    );
}

/// Every coordinate for small inputs, a seeded sample of 40 otherwise.
fn coords(rng: &mut Rng, n: usize, d: usize) -> Vec<usize> {
    let total = 2 * n * d;
    if total <= 100 {
        return (0..total).collect();
    }
    (0..40)
        .map(|_| (rng.next_u64() % total as u64) as usize)
        .collect()
}

/// Fused and unfused agree to 1e-4 relative (to the largest gradient).
fn check_variants_agree(f: &Run, u: &Run, what: &str) {
    assert_close(
        &[f.loss],
        &[u.loss as f64],
        1e-4,
        1e-7,
        &format!("{what}: loss"),
    );
    for (g, w, side) in [(&f.dza, &u.dza, "dza"), (&f.dzb, &u.dzb, "dzb")] {
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert_close(g, &to64(w), 1e-4, 1e-4 * scale, &format!("{what}: {side}"));
    }
}

/// Random views, or near-collapsed ones (every row a shared row plus noise
/// of `spread`).
fn views(rng: &mut Rng, n: usize, d: usize, spread: Option<f32>) -> (Vec<f32>, Vec<f32>) {
    match spread {
        None => (rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0)),
        Some(s) => {
            let base = rng.vec(d, -1.0, 1.0);
            let view = |rng: &mut Rng| -> Vec<f32> {
                (0..n * d)
                    .map(|k| base[k % d] + rng.uniform(-s, s))
                    .collect()
            };
            (view(rng), view(rng))
        }
    }
}

const SIZES: [(usize, usize); 3] = [(7, 5), (33, 129), (20, 17)];

fn check_loss(l: Loss, spread: Option<f32>, seed: u64) {
    let mut rng = Rng::new(seed);
    for &(n, d) in &SIZES {
        let (za, zb) = views(&mut rng, n, d, spread);
        let cs = coords(&mut rng, n, d);
        let f = run(l, LossVariant::Fused, &za, &zb, n, d);
        let u = run(l, LossVariant::Unfused, &za, &zb, n, d);
        let what = format!("{l:?} {n}x{d} spread={spread:?}");
        check_against_reference(l, &f, (&za, &zb), n, d, &cs, &format!("fused {what}"));
        check_against_reference(l, &u, (&za, &zb), n, d, &cs, &format!("unfused {what}"));
        check_variants_agree(&f, &u, &what);
    }
}

#[test]
fn vicreg_matches_reference() {
    check_loss(Loss::Vicreg(VicregConfig::default()), None, 1);
}

#[test]
fn vicreg_near_collapse_is_finite_and_exact() {
    // Every std is ~0.006 < gamma: the hinge is active in every dimension,
    // and 1/std would be huge without eps.
    check_loss(Loss::Vicreg(VicregConfig::default()), Some(1e-2), 2);
    // Fully collapsed: zero variance; eps alone keeps the gradient finite.
    let (n, d) = (9, 6);
    let row: Vec<f32> = Rng::new(3).vec(d, -1.0, 1.0);
    let za: Vec<f32> = (0..n * d).map(|k| row[k % d]).collect();
    for v in LossVariant::ALL {
        let r = run(Loss::Vicreg(VicregConfig::default()), v, &za, &za, n, d);
        assert!(r.loss.is_finite() && r.dza.iter().chain(&r.dzb).all(|g| g.is_finite()));
        // variance term = relu(1 - sqrt(eps)) = 0.99.
        assert_close(&r.terms.unwrap(), &[0.0, 0.99, 0.0], 1e-5, 1e-6, v.name());
    }
}

#[test]
fn vicreg_custom_coefficients() {
    let cfg = VicregConfig {
        invariance_weight: 1.5,
        variance_weight: 0.5,
        covariance_weight: 3.0,
        gamma: 0.7,
        eps: 1e-3,
    };
    check_loss(Loss::Vicreg(cfg), Some(0.5), 4);
}

#[test]
fn infonce_matches_reference() {
    check_loss(Loss::InfoNce(InfoNceConfig::default()), None, 5);
    check_loss(
        Loss::InfoNce(InfoNceConfig { temperature: 0.5 }),
        Some(0.05),
        6,
    );
}

#[test]
fn barlow_matches_reference() {
    check_loss(Loss::Barlow(BarlowConfig::default()), None, 7);
    check_loss(
        Loss::Barlow(BarlowConfig {
            lambda: 0.1,
            eps: 1e-5,
        }),
        Some(0.1),
        8,
    );
}

#[test]
fn cosine_similarity_matches_reference() {
    check_loss(Loss::Cosine, None, 10);
    check_loss(Loss::Cosine, Some(0.05), 11);
}

/// With a stop-gradient on one side (BYOL's target, SimSiam's other
/// branch) only the other side gets a gradient, and it is the same as
/// without the stop-gradient.
#[test]
fn cosine_similarity_with_a_detached_target() {
    let (n, d) = (13, 37);
    let mut rng = Rng::new(12);
    let (p, z) = views(&mut rng, n, d, None);
    let both = run(Loss::Cosine, LossVariant::Fused, &p, &z, n, d);
    for v in LossVariant::ALL {
        let mut tape = Tape::new(gpu());
        let a = tape.param(&upload(&p, &[n, d])).unwrap();
        let b = tape.param(&upload(&z, &[n, d])).unwrap();
        let b_stopped = tape.detach(b).unwrap();
        let out = loss::cosine_similarity(&mut tape, a, b_stopped, v).unwrap();
        let grads = tape.backward(out).unwrap();
        assert!(grads.get(b).is_none(), "{v:?}: no gradient through detach");
        let got = grads.get(a).unwrap().to_vec().unwrap();
        assert_close(&got, &to64(&both.dza), 1e-5, 1e-7, &format!("{v:?}: dp"));
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut rng = Rng::new(9);
    let mut tape = Tape::new(gpu());
    let mut var = |tape: &mut Tape, shape: &[usize]| {
        let (_, t) = random(&mut rng, shape);
        tape.param(&t).unwrap()
    };
    let one = var(&mut tape, &[1, 4]);
    let ok = var(&mut tape, &[3, 4]);
    let other = var(&mut tape, &[3, 5]);
    let flat = var(&mut tape, &[12]);
    let empty = var(&mut tape, &[3, 0]);
    let pairs = [(one, one), (ok, other), (flat, flat), (empty, empty)];
    for v in LossVariant::ALL {
        for &(a, b) in &pairs {
            let errs = [
                loss::vicreg(&mut tape, a, b, &VicregConfig::default(), v).err(),
                loss::infonce(&mut tape, a, b, &InfoNceConfig::default(), v).err(),
                loss::barlow_twins(&mut tape, a, b, &BarlowConfig::default(), v).err(),
            ];
            for e in errs {
                assert!(matches!(e, Some(Error::Shape { .. })), "{e:?}");
            }
        }
        let bad_tau = InfoNceConfig { temperature: 0.0 };
        let e = loss::infonce(&mut tape, ok, ok, &bad_tau, v).err();
        assert!(matches!(e, Some(Error::Invalid { .. })), "{e:?}");
    }
}

/// On a device whose storage bindings hold 1 MiB, the unfused losses cannot
/// bind their D x D (or N x N) matrix and say so; the fused ones tile and
/// still match the reference.
#[test]
fn fused_losses_fit_a_small_binding_limit() {
    let small = Gpu::with_options(GpuOptions {
        max_storage_binding: Some(1 << 20),
        ..GpuOptions::default()
    })
    .unwrap();
    let mut rng = Rng::new(10);
    let cases = [
        (Loss::Vicreg(VicregConfig::default()), 24, 600),
        (Loss::Barlow(BarlowConfig::default()), 24, 600),
        (Loss::InfoNce(InfoNceConfig::default()), 600, 12),
    ];
    for (l, n, d) in cases {
        let (za, zb) = views(&mut rng, n, d, None);
        let mut tape = Tape::new(&small);
        let a = tape
            .param(&Tensor::from_slice(&small, &za, &[n, d]).unwrap())
            .unwrap();
        let b = tape
            .param(&Tensor::from_slice(&small, &zb, &[n, d]).unwrap())
            .unwrap();
        let e = match l {
            Loss::Vicreg(c) => loss::vicreg(&mut tape, a, b, &c, LossVariant::Unfused).err(),
            Loss::InfoNce(c) => loss::infonce(&mut tape, a, b, &c, LossVariant::Unfused).err(),
            Loss::Barlow(c) => loss::barlow_twins(&mut tape, a, b, &c, LossVariant::Unfused).err(),
            Loss::Cosine => unreachable!("holds no N x N or D x D matrix"),
        };
        assert!(matches!(e, Some(Error::Limit { .. })), "{l:?}: {e:?}");
        let f = run_on(&small, l, LossVariant::Fused, &za, &zb, n, d);
        let cs: Vec<usize> = (0..8)
            .map(|_| (rng.next_u64() % (2 * n * d) as u64) as usize)
            .collect();
        check_against_reference(
            l,
            &f,
            (&za, &zb),
            n,
            d,
            &cs,
            &format!("small binding {l:?}"),
        );
    }
}

#[test]
fn collapse_monitors() {
    let mut rng = Rng::new(11);
    let (n, d) = (40, 6);
    let (data, z) = random(&mut rng, &[n, d]);
    let s = monitors::normalized_std(&z).unwrap();
    let mut stds = Vec::new();
    for j in 0..d {
        let col: Vec<f64> = (0..n)
            .map(|i| {
                let row = &data[i * d..(i + 1) * d];
                let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                row[j] as f64 / norm
            })
            .collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        stds.push((col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    }
    let mean = stds.iter().sum::<f64>() / d as f64;
    let min = stds.iter().copied().fold(f64::INFINITY, f64::min);
    assert_close(
        &[s.mean_std as f32, s.min_std as f32],
        &[mean, min],
        1e-5,
        1e-7,
        "std",
    );

    // Rank of a matrix built from known singular values: Z = U diag(s) Vᵀ
    // with U, V made of coordinate axes, so p = s / sum(s).
    let sv = [3.0f64, 2.0, 1.0, 0.5];
    let mut z = vec![0.0f32; 10 * 7];
    for (k, s) in sv.iter().enumerate() {
        z[(2 * k) * 7 + (6 - k)] = *s as f32;
    }
    let total: f64 = sv.iter().sum();
    let want = (-sv.iter().map(|s| s / total * (s / total).ln()).sum::<f64>()).exp();
    for shape in [[10, 7], [7, 10]] {
        let data = if shape == [10, 7] {
            z.clone()
        } else {
            (0..70).map(|k| z[(k % 10) * 7 + k / 10]).collect()
        };
        let got = monitors::effective_rank(&upload(&data, &shape)).unwrap();
        assert!((got - want).abs() < 1e-5, "{shape:?}: {got} vs {want}");
    }
    // Fully collapsed: rank 1.
    let same: Vec<f32> = (0..5 * 4).map(|k| (k % 4) as f32 + 1.0).collect();
    let got = monitors::effective_rank(&upload(&same, &[5, 4])).unwrap();
    assert!((got - 1.0).abs() < 1e-4, "{got}");
    // Jacobi on a known symmetric matrix: eigenvalues of [[2,1],[1,2]] are 1, 3.
    let mut e = monitors::symmetric_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2);
    e.sort_by(f64::total_cmp);
    assert!(
        (e[0] - 1.0).abs() < 1e-12 && (e[1] - 3.0).abs() < 1e-12,
        "{e:?}"
    );
    assert!(monitors::effective_rank(&upload(&[1.0, 2.0], &[1, 2])).is_err());
}
