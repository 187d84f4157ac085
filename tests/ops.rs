//! Elementwise ops, reductions and transpose against f64 CPU references, on
//! random inputs at shapes that are not multiples of any workgroup size.

mod common;
use common::*;
use darkmatter::kernels::{BinaryOp, UnaryOp, elementwise as ew, reduce, transpose};

#[test]
fn unary_ops_match_reference() {
    let mut rng = Rng::new(1);
    let shape = [7, 13, 5];
    // Positive inputs so that log and sqrt are defined.
    let x = rng.vec(7 * 13 * 5, 0.1, 3.0);
    let xs: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 3 == 0 { -v } else { *v })
        .collect();
    let t = upload(&x, &shape);
    let ts = upload(&xs, &shape);
    type Case<'a> = (UnaryOp, &'a darkmatter::Tensor, &'a [f32], fn(f64) -> f64);
    let cases: [Case; 5] = [
        (UnaryOp::Relu, &ts, &xs, |v| v.max(0.0)),
        (UnaryOp::Exp, &ts, &xs, f64::exp),
        (UnaryOp::Log, &t, &x, f64::ln),
        (UnaryOp::Sqrt, &t, &x, f64::sqrt),
        (UnaryOp::Square, &ts, &xs, |v| v * v),
    ];
    for (op, input, data, f) in cases {
        let got = ew::unary(input, op).unwrap().to_vec().unwrap();
        let want: Vec<f64> = data.iter().map(|&v| f(v as f64)).collect();
        assert_close(&got, &want, 1e-6, 1e-6, &format!("{op:?}"));
    }
    let got = ew::affine(&ts, -2.5, 0.75).unwrap().to_vec().unwrap();
    let want: Vec<f64> = xs.iter().map(|&v| -2.5 * v as f64 + 0.75).collect();
    assert_close(&got, &want, 1e-6, 1e-6, "affine");
}

fn binary_ref(op: BinaryOp, u: f64, v: f64) -> f64 {
    match op {
        BinaryOp::Add => u + v,
        BinaryOp::Sub => u - v,
        BinaryOp::Mul => u * v,
        BinaryOp::Div => u / v,
        BinaryOp::ReluGrad => {
            if v > 0.0 {
                u
            } else {
                0.0
            }
        }
        BinaryOp::SqrtGrad => 0.5 * u / v,
        // Checked through their ops' gradient tests in tests/layers.rs.
        BinaryOp::GeluGrad | BinaryOp::SigmoidGrad => unreachable!("not in this test's op list"),
    }
}

/// Reads `data` (of `shape`) at the output coordinate `c` with broadcasting.
fn at(data: &[f32], shape: &[usize], out: &[usize], c: &[usize]) -> f64 {
    let lead = out.len() - shape.len();
    let mut idx = 0;
    for (d, &n) in shape.iter().enumerate() {
        let coord = if n == 1 { 0 } else { c[d + lead] };
        idx = idx * n + coord;
    }
    data[idx] as f64
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let mut rng = Rng::new(2);
    let cases: [(&[usize], &[usize], &[usize]); 6] = [
        (&[7, 13], &[7, 13], &[7, 13]),
        (&[7, 13], &[13], &[7, 13]),   // bias row
        (&[7, 13], &[7, 1], &[7, 13]), // column
        (&[7, 1], &[1, 13], &[7, 13]), // outer
        (&[3, 5, 9, 7], &[5, 1, 7], &[3, 5, 9, 7]),
        (&[1], &[2, 3], &[2, 3]),
    ];
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::ReluGrad,
        BinaryOp::SqrtGrad,
    ];
    for (sa, sb, out) in cases {
        let a = rng.away_from_zero(sa.iter().product(), 0.2, 2.0);
        let b = rng.away_from_zero(sb.iter().product(), 0.2, 2.0);
        let (ta, tb) = (upload(&a, sa), upload(&b, sb));
        for op in ops {
            let got = ew::binary(&ta, &tb, op).unwrap();
            assert_eq!(got.shape(), out);
            let got = got.to_vec().unwrap();
            let n: usize = out.iter().product();
            let mut want = Vec::with_capacity(n);
            for i in 0..n {
                let mut c = vec![0; out.len()];
                let mut r = i;
                for d in (0..out.len()).rev() {
                    c[d] = r % out[d];
                    r /= out[d];
                }
                want.push(binary_ref(op, at(&a, sa, out, &c), at(&b, sb, out, &c)));
            }
            assert_close(&got, &want, 1e-6, 1e-6, &format!("{op:?} {sa:?} {sb:?}"));
        }
    }
}

#[test]
fn expand_repeats_along_size_one_dims() {
    let t = upload(&[1.0, 2.0, 3.0], &[3, 1]);
    let e = ew::expand(&t, &[2, 3, 4]).unwrap();
    let got = e.to_vec().unwrap();
    let want: Vec<f64> = (0..24).map(|i| ((i / 4) % 3 + 1) as f64).collect();
    assert_close(&got, &want, 0.0, 0.0, "expand");
}

#[test]
fn sums_and_means_over_every_axis() {
    let mut rng = Rng::new(3);
    let shape = [5, 67, 3, 9];
    let (x, t) = random(&mut rng, &shape);
    for axis in 0..4 {
        let sum = reduce::sum_axis(&t, axis).unwrap();
        let mean = reduce::mean_axis(&t, axis).unwrap();
        let mut out_shape = shape.to_vec();
        out_shape.remove(axis);
        assert_eq!(sum.shape(), out_shape.as_slice());
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let len = shape[axis];
        let mut want = vec![0f64; outer * inner];
        for o in 0..outer {
            for l in 0..len {
                for i in 0..inner {
                    want[o * inner + i] += x[(o * len + l) * inner + i] as f64;
                }
            }
        }
        assert_close(
            &sum.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
            &format!("sum axis {axis}"),
        );
        let want_mean: Vec<f64> = want.iter().map(|v| v / len as f64).collect();
        assert_close(
            &mean.to_vec().unwrap(),
            &want_mean,
            1e-5,
            1e-6,
            &format!("mean axis {axis}"),
        );
    }
}

/// Innermost-axis sums take one invocation per row up to 64 values and a
/// workgroup per row beyond: both sides of the cut, with row counts that
/// are not multiples of a workgroup.
#[test]
fn innermost_sums_on_both_sides_of_the_short_row_cut() {
    let mut rng = Rng::new(5);
    for (rows, len) in [(1, 1), (65, 1), (129, 49), (3, 64), (70, 65), (2, 1000)] {
        let (x, t) = random(&mut rng, &[rows, len]);
        let got = reduce::sum_axis(&t, 1).unwrap().to_vec().unwrap();
        let want: Vec<f64> = x
            .chunks(len)
            .map(|r| r.iter().map(|&v| v as f64).sum())
            .collect();
        assert_close(&got, &want, 1e-5, 1e-5, &format!("rows {rows} x {len}"));
        if len <= 64 {
            // The order of the one-workgroup tree, in f32: the same bits
            // whichever kernel summed the row.
            let tree: Vec<f32> = x
                .chunks(len)
                .map(|r| {
                    let mut slot = [0f32; 64];
                    slot[..r.len()].copy_from_slice(r);
                    let mut width = 32;
                    while width > 0 {
                        for l in 0..width {
                            slot[l] += slot[l + width];
                        }
                        width /= 2;
                    }
                    slot[0]
                })
                .collect();
            assert_eq!(got, tree, "rows {rows} x {len}: not the tree's order");
        }
    }
}

#[test]
fn whole_tensor_sums_are_exact_at_awkward_sizes() {
    let mut rng = Rng::new(4);
    // One element, just under / over one chunk, and three levels of chunks.
    for n in [1usize, 63, 4095, 4097, 100_003, 17_000_001] {
        let x = rng.vec(n, 0.0, 1.0);
        let t = upload(&x, &[n]);
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        let got = reduce::sum_all(&t).unwrap();
        assert_eq!(got.shape(), &[] as &[usize]);
        let got = got.item().unwrap() as f64;
        assert!(
            (got - want).abs() <= 1e-6 * want.abs() + 1e-6,
            "sum of {n}: {got} vs {want}"
        );
        let mean = reduce::mean_all(&t).unwrap().item().unwrap() as f64;
        assert!((mean - want / n as f64).abs() <= 1e-6, "mean of {n}");
    }
}

#[test]
fn sum_to_shape_undoes_broadcasting() {
    let mut rng = Rng::new(5);
    let (g, t) = random(&mut rng, &[4, 7, 3]);
    let s = reduce::sum_to_shape(&t, &[7, 1]).unwrap();
    assert_eq!(s.shape(), &[7, 1]);
    let mut want = vec![0f64; 7];
    for a in 0..4 {
        for b in 0..7 {
            for c in 0..3 {
                want[b] += g[(a * 7 + b) * 3 + c] as f64;
            }
        }
    }
    assert_close(&s.to_vec().unwrap(), &want, 1e-5, 1e-6, "sum_to_shape");
}

#[test]
fn transpose_swaps_the_last_two_dims() {
    let mut rng = Rng::new(6);
    for shape in [
        vec![1, 1],
        vec![7, 13],
        vec![33, 17],
        vec![3, 19, 70],
        vec![2, 2, 5, 3],
    ] {
        let (x, t) = random(&mut rng, &shape);
        let tt = transpose::transpose(&t).unwrap();
        let r = shape.len();
        let (rows, cols) = (shape[r - 2], shape[r - 1]);
        let batch: usize = shape[..r - 2].iter().product();
        let mut want = vec![0f64; x.len()];
        for b in 0..batch {
            for i in 0..rows {
                for j in 0..cols {
                    want[b * rows * cols + j * rows + i] = x[b * rows * cols + i * cols + j] as f64;
                }
            }
        }
        let mut out_shape = shape.clone();
        out_shape.swap(r - 2, r - 1);
        assert_eq!(tt.shape(), out_shape.as_slice());
        assert_close(
            &tt.to_vec().unwrap(),
            &want,
            0.0,
            0.0,
            &format!("transpose {shape:?}"),
        );
    }
}

/// An axis longer than one invocation may loop over on llvmpipe (which ends
/// a loop after 65 535 iterations without an error), against f64: summed in
/// equal pieces, then the pieces.
#[test]
fn sums_over_axes_longer_than_a_loop_may_run() {
    let (outer, len, inner) = (2, 140_000, 3);
    let mut rng = Rng::new(17);
    let data = rng.vec(outer * len * inner, -1.0, 1.0);
    let t = upload(&data, &[outer, len, inner]);
    let got = reduce::sum_axis(&t, 1).unwrap().to_vec().unwrap();
    let mut want = vec![0f64; outer * inner];
    for o in 0..outer {
        for l in 0..len {
            for i in 0..inner {
                want[o * inner + i] += data[(o * len + l) * inner + i] as f64;
            }
        }
    }
    assert_close(&got, &want, 1e-5, 1e-3, "sum over 140 000");
    // A prime length above the range cannot be cut: an error, not a
    // partial sum.
    let prime = upload(&vec![1.0; 65_537 * 2], &[1, 65_537, 2]);
    assert!(reduce::sum_axis(&prime, 1).is_err());
}
