//! Evaluation: the cross-entropy op (f64 reference and finite differences),
//! weighted kNN (known answers, a brute-force f64 reference, chunking under
//! a small binding limit), the linear and regression probes, PCA, and typed
//! errors for bad input.

mod common;
use common::*;
use darkmatter::data::{Attributes, Shape};
use darkmatter::eval::{self, KNN_TEMPERATURE, ProbeConfig};
use darkmatter::{Error, Gpu, GpuOptions, Tape, Tensor};

/// f64 reference: mean over rows of lse(x_r) - x_r[label_r].
fn cross_entropy_ref(x: &[f64], labels: &[usize], classes: usize) -> f64 {
    let rows = labels.len();
    let mut total = 0.0;
    for (row, &l) in x.chunks_exact(classes).zip(labels) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse - row[l];
    }
    total / rows as f64
}

#[test]
fn cross_entropy_matches_reference_and_finite_differences() {
    let (rows, classes) = (7, 5);
    let mut rng = Rng::new(11);
    // Logits up to ±30: without the max subtraction exp would lose digits.
    let x: Vec<f32> = rng.vec(rows * classes, -30.0, 30.0);
    let labels: Vec<usize> = (0..rows)
        .map(|_| rng.next_u64() as usize % classes)
        .collect();
    let labels_f: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();

    let mut tape = Tape::new(gpu());
    let logits = tape.param(&upload(&x, &[rows, classes])).unwrap();
    let loss =
        darkmatter::loss::cross_entropy(&mut tape, logits, &upload(&labels_f, &[rows])).unwrap();
    // An upstream gradient other than 1 checks that g is applied.
    let scaled = tape.scale(loss, 1.7).unwrap();
    let got = tape.value(loss).unwrap().item().unwrap();
    let want = cross_entropy_ref(&x64, &labels, classes);
    assert_close(&[got], &[want], 1e-5, 1e-5, "cross_entropy forward");

    let grads = tape.backward(scaled).unwrap();
    let dx = grads.get(logits).unwrap().to_vec().unwrap();
    // dL/dx[r, j] = 1.7 (softmax(x_r)[j] - [j = label_r]) / rows.
    let mut analytic = vec![0f64; rows * classes];
    for (r, row) in x64.chunks_exact(classes).enumerate() {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for j in 0..classes {
            let onehot = (j == labels[r]) as u8 as f64;
            analytic[r * classes + j] = 1.7 * ((row[j] - m).exp() / z - onehot) / rows as f64;
        }
    }
    assert_close(&dx, &analytic, 1e-4, 1e-6, "cross_entropy backward");
    // Central differences of the f64 reference.
    let eps = 1e-6;
    let numeric: Vec<f64> = (0..x64.len())
        .map(|i| {
            let (mut plus, mut minus) = (x64.clone(), x64.clone());
            plus[i] += eps;
            minus[i] -= eps;
            1.7 * (cross_entropy_ref(&plus, &labels, classes)
                - cross_entropy_ref(&minus, &labels, classes))
                / (2.0 * eps)
        })
        .collect();
    assert_close(
        &dx,
        &numeric,
        1e-4,
        1e-6,
        "cross_entropy finite differences",
    );
}

/// Random unit-ish cluster centres with `per_class` noisy samples each;
/// returns features and labels.
fn clusters(
    rng: &mut Rng,
    centres: &[Vec<f32>],
    per_class: usize,
    noise: f32,
) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..per_class * centres.len() {
        let c = i % centres.len();
        x.extend(centres[c].iter().map(|&v| v + rng.uniform(-noise, noise)));
        y.push(c as u32);
    }
    (x, y)
}

#[test]
fn knn_separates_clusters() {
    let (d, classes) = (16, 4);
    let mut rng = Rng::new(3);
    let centres: Vec<Vec<f32>> = (0..classes).map(|_| rng.vec(d, -1.0, 1.0)).collect();
    let (xtr, ytr) = clusters(&mut rng, &centres, 40, 0.1);
    let (xte, yte) = clusters(&mut rng, &centres, 10, 0.1);
    let train = upload(&xtr, &[ytr.len(), d]);
    let test = upload(&xte, &[yte.len(), d]);
    let acc = eval::knn(
        &train,
        &ytr,
        &test,
        &yte,
        classes,
        &[1, 5, 20],
        KNN_TEMPERATURE,
    )
    .unwrap();
    assert_eq!(acc, vec![100.0; 3]);
}

/// Brute-force f64 weighted kNN with the same rules: rank by similarity,
/// lower index first on ties; class score = sum of exp(sim / T); lowest
/// class on a score tie.
fn knn_ref(
    (xtr, ytr): (&[f32], &[u32]),
    (xte, yte): (&[f32], &[u32]),
    d: usize,
    classes: usize,
    ks: &[usize],
    t: f64,
) -> Vec<f32> {
    let unit = |r: &[f32]| -> Vec<f64> {
        let n = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        r.iter().map(|&v| v as f64 / n).collect()
    };
    let bank: Vec<Vec<f64>> = xtr.chunks_exact(d).map(unit).collect();
    let mut correct = vec![0usize; ks.len()];
    for (q, &truth) in xte.chunks_exact(d).zip(yte) {
        let q = unit(q);
        let mut ranked: Vec<(f64, usize)> = bank
            .iter()
            .enumerate()
            .map(|(i, b)| (q.iter().zip(b).map(|(a, b)| a * b).sum(), i))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (slot, &k) in ks.iter().enumerate() {
            let mut scores = vec![0f64; classes];
            for &(s, i) in &ranked[..k] {
                scores[ytr[i] as usize] += (s / t).exp();
            }
            let best = (0..classes).fold(0, |b, c| if scores[c] > scores[b] { c } else { b });
            correct[slot] += (best == truth as usize) as usize;
        }
    }
    correct
        .iter()
        .map(|&c| 100.0 * c as f32 / yte.len() as f32)
        .collect()
}

#[test]
fn knn_matches_brute_force_reference() {
    let (n, m, d, classes) = (300, 50, 12, 5);
    let ks = [1, 7, 20, 300];
    let mut rng = Rng::new(17);
    let xtr = rng.vec(n * d, -1.0, 1.0);
    let xte = rng.vec(m * d, -1.0, 1.0);
    let ytr: Vec<u32> = (0..n)
        .map(|_| (rng.next_u64() % classes as u64) as u32)
        .collect();
    let yte: Vec<u32> = (0..m)
        .map(|_| (rng.next_u64() % classes as u64) as u32)
        .collect();
    let got = eval::knn(
        &upload(&xtr, &[n, d]),
        &ytr,
        &upload(&xte, &[m, d]),
        &yte,
        classes,
        &ks,
        KNN_TEMPERATURE,
    )
    .unwrap();
    let want = knn_ref(
        (&xtr, &ytr),
        (&xte, &yte),
        d,
        classes,
        &ks,
        KNN_TEMPERATURE as f64,
    );
    assert_eq!(got, want);
}

#[test]
fn knn_chunks_queries_under_a_small_binding_limit() {
    let (n, m, d, classes) = (200, 30, 6, 3);
    // Room for 7 rows of similarities per chunk: 30 queries take 5 chunks.
    let small = Gpu::with_options(GpuOptions {
        max_storage_binding: Some((n * 4 * 7) as u64),
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng::new(5);
    let xtr = rng.vec(n * d, -1.0, 1.0);
    let xte = rng.vec(m * d, -1.0, 1.0);
    let ytr: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
    let yte: Vec<u32> = (0..m).map(|i| (i % classes) as u32).collect();
    let run = |g: &Gpu| {
        let train = Tensor::from_slice(g, &xtr, &[n, d]).unwrap();
        let test = Tensor::from_slice(g, &xte, &[m, d]).unwrap();
        eval::knn(&train, &ytr, &test, &yte, classes, &[1, 10, 50], 0.07).unwrap()
    };
    let want = knn_ref((&xtr, &ytr), (&xte, &yte), d, classes, &[1, 10, 50], 0.07);
    assert_eq!(run(&small), want);
    assert_eq!(run(gpu()), want);
}

#[test]
fn knn_rejects_bad_input() {
    let train = upload(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2]);
    let test = upload(&[1.0, 0.5], &[1, 2]);
    let labels = [0, 1, 1];
    let knn = |tr: &Tensor, yl: &[u32], te: &Tensor, tl: &[u32], c, ks: &[usize], t| {
        eval::knn(tr, yl, te, tl, c, ks, t).unwrap_err()
    };
    let invalid = |e: Error| assert!(matches!(e, Error::Invalid { .. }), "{e}");
    invalid(knn(&train, &labels[..2], &test, &[0], 2, &[1], 0.07));
    invalid(knn(&train, &labels, &test, &[0, 1], 2, &[1], 0.07));
    invalid(knn(&train, &labels, &test, &[0], 2, &[0], 0.07));
    invalid(knn(&train, &labels, &test, &[0], 2, &[4], 0.07));
    invalid(knn(&train, &labels, &test, &[0], 2, &[], 0.07));
    invalid(knn(&train, &labels, &test, &[0], 1, &[1], 0.07));
    invalid(knn(&train, &labels, &test, &[0], 2, &[1], 0.0));
    let empty = upload(&[], &[0, 2]);
    let shape = |e: Error| assert!(matches!(e, Error::Shape { .. }), "{e}");
    shape(knn(&train, &labels, &empty, &[], 2, &[1], 0.07));
    shape(knn(
        &train,
        &labels,
        &upload(&[1.0; 3], &[1, 3]),
        &[0],
        2,
        &[1],
        0.07,
    ));
}

#[test]
fn linear_probe_fits_separable_clusters() {
    let (d, classes) = (8, 3);
    let mut rng = Rng::new(23);
    let centres: Vec<Vec<f32>> = (0..classes).map(|_| rng.vec(d, -2.0, 2.0)).collect();
    let (xtr, ytr) = clusters(&mut rng, &centres, 60, 0.5);
    let (xte, yte) = clusters(&mut rng, &centres, 20, 0.5);
    let config = ProbeConfig {
        epochs: 20,
        batch_size: 32,
        ..Default::default()
    };
    let r = eval::linear_probe(
        &upload(&xtr, &[ytr.len(), d]),
        &ytr,
        &upload(&xte, &[yte.len(), d]),
        &yte,
        classes,
        &config,
    )
    .unwrap();
    assert_eq!(r.train_top1, 100.0, "{r:?}");
    assert_eq!(r.test_top1, 100.0, "{r:?}");

    let bad = ProbeConfig {
        epochs: 0,
        ..Default::default()
    };
    let err = eval::linear_probe(
        &upload(&xtr, &[ytr.len(), d]),
        &ytr,
        &upload(&xte, &[yte.len(), d]),
        &yte,
        classes,
        &bad,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[test]
fn regression_probe_r2_is_one_for_linear_targets_and_zero_for_noise() {
    let (n, m, d) = (400, 200, 8);
    let mut rng = Rng::new(31);
    let xtr = rng.vec(n * d, -1.0, 1.0);
    let xte = rng.vec(m * d, -1.0, 1.0);
    let a = rng.vec(d, -2.0, 2.0);
    let linear = |x: &[f32]| -> Vec<f32> {
        x.chunks_exact(d)
            .map(|r| 0.5 + r.iter().zip(&a).map(|(x, a)| x * a).sum::<f32>())
            .collect()
    };
    let train_t = vec![linear(&xtr), rng.vec(n, -1.0, 1.0)];
    let test_t = vec![linear(&xte), rng.vec(m, -1.0, 1.0)];
    let r2 = eval::regression_probe(
        &upload(&xtr, &[n, d]),
        &train_t,
        &upload(&xte, &[m, d]),
        &test_t,
    )
    .unwrap();
    assert!(r2[0] > 0.999, "linear target: R² = {}", r2[0]);
    assert!(r2[1].abs() < 0.1, "noise target: R² = {}", r2[1]);

    let err = eval::regression_probe(
        &upload(&xtr, &[n, d]),
        &train_t[..1],
        &upload(&xte, &[m, d]),
        &test_t,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let err = eval::regression_probe(
        &upload(&xtr, &[n, d]),
        &[train_t[0][..n - 1].to_vec()],
        &upload(&xte, &[m, d]),
        &test_t[..1],
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[test]
fn localisation_targets_encode_rotation_modulo_symmetry() {
    let at = |shape: Shape, rotation: f32| Attributes {
        class: Shape::ALL.iter().position(|&s| s == shape).unwrap() as u32,
        x: 0.25,
        y: 0.75,
        scale: 0.5,
        rotation,
    };
    let quarter = std::f32::consts::FRAC_PI_2;
    let t = eval::localisation_targets(&[
        at(Shape::Square, 0.1),
        at(Shape::Square, 0.1 + quarter),
        at(Shape::Disc, 1.0),
    ]);
    assert_eq!(t.len(), eval::LOCALISATION_TARGETS.len());
    assert_eq!((t[0][0], t[1][0], t[2][0]), (0.25, 0.75, 0.5));
    // A square turned by a quarter looks the same: same targets.
    assert!((t[3][0] - t[3][1]).abs() < 1e-5 && (t[4][0] - t[4][1]).abs() < 1e-5);
    assert!((t[3][0] - 0.4f32.sin()).abs() < 1e-6);
    assert_eq!((t[3][2], t[4][2]), (0.0, 0.0));
}

#[test]
fn pca_recovers_the_dominant_directions() {
    let (n, d) = (2000, 6);
    let mut rng = Rng::new(41);
    // An orthonormal basis Q by Gram-Schmidt on random vectors.
    let mut q: Vec<Vec<f64>> = Vec::new();
    while q.len() < d {
        let mut v: Vec<f64> = rng.vec(d, -1.0, 1.0).iter().map(|&x| x as f64).collect();
        for b in &q {
            let p: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= p * y);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        q.push(v.iter().map(|x| x / norm).collect());
    }
    // x = sum_i s_i z_i q_i + offset, with spreads 5, 2 and then 0.3.
    let spread = [5.0, 2.0, 0.3, 0.3, 0.3, 0.3];
    let mut feats = Vec::with_capacity(n * d);
    let mut truth = Vec::with_capacity(n);
    for _ in 0..n {
        let z: Vec<f64> = (0..d)
            .map(|i| rng.uniform(-1.0, 1.0) as f64 * spread[i])
            .collect();
        feats.extend((0..d).map(|j| (3.0 + (0..d).map(|i| z[i] * q[i][j]).sum::<f64>()) as f32));
        truth.push([z[0], z[1]]);
    }
    let p = eval::pca_2d(&feats, n, d).unwrap();
    for c in 0..2 {
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for (got, want) in p.iter().zip(&truth) {
            let (x, y) = (got[c] as f64, want[c]);
            sxy += x * y;
            sxx += x * x;
            syy += y * y;
        }
        let corr = sxy / (sxx * syy).sqrt();
        assert!(corr.abs() > 0.99, "component {c}: correlation {corr}");
    }
    assert!(eval::pca_2d(&feats, n, d + 1).is_err());
    assert!(eval::pca_2d(&[], 0, d).is_err());
}
