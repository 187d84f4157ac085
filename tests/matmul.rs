//! Every matmul variant against an f64 CPU reference, with and without
//! transposed operands, at shapes that are not multiples of any tile.

mod common;
use common::*;
use darkmatter::kernels::matmul::{MatmulVariant, matmul_with};

fn check(variant: MatmulVariant, m: usize, n: usize, k: usize, ta: bool, tb: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let a_shape = if ta { [k, m] } else { [m, k] };
    let b_shape = if tb { [n, k] } else { [k, n] };
    let (a, ta_t) = random(&mut rng, &a_shape);
    let (b, tb_t) = random(&mut rng, &b_shape);
    let c = matmul_with(variant, &ta_t, &tb_t, ta, tb).unwrap();
    assert_eq!(c.shape(), &[m, n]);
    let want = matmul_ref(&a, &b, m, n, k, ta, tb);
    let what = format!("{} {m}x{n}x{k} ta={ta} tb={tb}", variant.name());
    assert_close(
        &c.to_vec().unwrap(),
        &want,
        1e-4,
        2e-6 * k as f64 + 1e-6,
        &what,
    );
}

const SHAPES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (7, 13, 5),
    (129, 67, 255),
    (64, 64, 64),
    (33, 1, 17),
    (3, 70, 9),
];

fn all_shapes_and_layouts(variant: MatmulVariant) {
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        for ta in [false, true] {
            for tb in [false, true] {
                check(
                    variant,
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    i as u64 * 4 + ta as u64 * 2 + tb as u64,
                );
            }
        }
    }
}

#[test]
fn naive_matches_reference() {
    all_shapes_and_layouts(MatmulVariant::Naive);
}

#[test]
fn tiled_matches_reference() {
    all_shapes_and_layouts(MatmulVariant::Tiled);
}

#[test]
fn blocked_matches_reference() {
    all_shapes_and_layouts(MatmulVariant::Blocked);
}

#[test]
fn every_variant_at_1024() {
    for v in MatmulVariant::ALL {
        check(v, 1024, 1024, 1024, false, false, 99);
    }
}

#[test]
fn blocked_transposed_at_large_odd_sizes() {
    check(MatmulVariant::Blocked, 515, 300, 257, true, false, 7);
    check(MatmulVariant::Blocked, 300, 515, 257, false, true, 8);
    check(MatmulVariant::Tiled, 515, 300, 257, true, true, 9);
}

#[test]
fn batched_and_shared_operands() {
    let mut rng = Rng::new(42);
    let (batch, m, n, k) = (3, 9, 11, 6);
    let (a, at) = random(&mut rng, &[batch, m, k]);
    let (b, bt) = random(&mut rng, &[k, n]);
    for v in MatmulVariant::ALL {
        let c = matmul_with(v, &at, &bt, false, false).unwrap();
        assert_eq!(c.shape(), &[batch, m, n]);
        let got = c.to_vec().unwrap();
        for i in 0..batch {
            let want = matmul_ref(&a[i * m * k..(i + 1) * m * k], &b, m, n, k, false, false);
            assert_close(
                &got[i * m * n..(i + 1) * m * n],
                &want,
                1e-5,
                1e-5,
                v.name(),
            );
        }
    }
    // Both operands batched, B transposed.
    let (b2, bt2) = random(&mut rng, &[batch, n, k]);
    let c = matmul_with(MatmulVariant::Blocked, &at, &bt2, false, true).unwrap();
    let got = c.to_vec().unwrap();
    for i in 0..batch {
        let want = matmul_ref(
            &a[i * m * k..(i + 1) * m * k],
            &b2[i * n * k..(i + 1) * n * k],
            m,
            n,
            k,
            false,
            true,
        );
        assert_close(
            &got[i * m * n..(i + 1) * m * n],
            &want,
            1e-5,
            1e-5,
            "batched tb",
        );
    }
}

#[test]
fn default_variant_follows_the_adapter() {
    // The blocked kernel measured fastest on lavapipe and on an H200.
    assert_eq!(MatmulVariant::default_for(gpu()), MatmulVariant::Blocked);
    for v in MatmulVariant::ALL {
        assert_eq!(MatmulVariant::from_name(v.name()), Some(v));
    }
}
