//! Every matmul variant against an f64 CPU reference, with and without
//! transposed operands, at shapes that are not multiples of any tile.

mod common;
use common::*;
use darkmatter::kernels::matmul::{MatmulVariant, matmul, matmul_with};
use darkmatter::{DeviceClass, Error, Gpu, GpuOptions, Tensor};

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
fn texture_matches_reference() {
    all_shapes_and_layouts(MatmulVariant::Texture);
}

#[test]
fn texture_packs_by_copy_where_the_layout_allows() {
    // K and N are multiples of 64, so both operands are copied into their
    // textures; 70 rows leave padding rows that must read as zeros.
    check(MatmulVariant::Texture, 70, 64, 128, false, false, 21);
    check(MatmulVariant::Texture, 16, 128, 64, false, false, 22);
    // The same shapes through the packing kernel.
    check(MatmulVariant::Texture, 70, 64, 128, true, true, 23);
}

#[test]
fn texture_folds_operands_taller_than_a_texture() {
    // op(A) with more rows than a texture side, and op(B) with more rows
    // (the inner dimension) than a texture side: both fold into pages.
    let side = gpu().limits().max_texture_dimension_2d as usize;
    check(MatmulVariant::Texture, side + 37, 18, 9, false, false, 24);
    check(MatmulVariant::Texture, 5, 7, side + 21, true, false, 25);
    check(MatmulVariant::Texture, 5, 64, side + 64, false, false, 26);
}

#[test]
fn texture_limits_are_typed_errors_and_the_default_falls_back() {
    // Textures of at most 64 x 64 texels: 300 rows of 64 texels (K = 256)
    // need 5 pages side by side, 320 texels wide.
    let small = Gpu::with_options(GpuOptions {
        max_texture_dimension: Some(64),
        matmul: Some("texture".into()),
        ..GpuOptions::default()
    })
    .unwrap();
    let mut rng = Rng::new(27);
    let (m, n, k) = (300, 5, 256);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let at = Tensor::from_slice(&small, &a, &[m, k]).unwrap();
    let bt = Tensor::from_slice(&small, &b, &[k, n]).unwrap();
    match matmul_with(MatmulVariant::Texture, &at, &bt, false, false) {
        Err(Error::Limit {
            limit: "max_texture_dimension_2d",
            requested: 320,
            allowed: 64,
            ..
        }) => {}
        other => panic!("expected a texture limit error, got {other:?}"),
    }
    // The default variant is texture on this device, and falls back.
    let c = matmul(&at, &bt, false, false).unwrap();
    let want = matmul_ref(&a, &b, m, n, k, false, false);
    assert_close(&c.to_vec().unwrap(), &want, 1e-4, 1e-3, "fallback");
    // Smaller operands fold into pages of 64 rows.
    let (m, k) = (200, 20);
    let at = Tensor::from_slice(&small, &a[..m * k], &[m, k]).unwrap();
    let bt = Tensor::from_slice(&small, &b[..k * n], &[k, n]).unwrap();
    let c = matmul_with(MatmulVariant::Texture, &at, &bt, false, false).unwrap();
    let want = matmul_ref(&a[..m * k], &b[..k * n], m, n, k, false, false);
    assert_close(&c.to_vec().unwrap(), &want, 1e-5, 1e-4, "folded");
}

#[test]
fn every_variant_at_1024() {
    for v in MatmulVariant::ALL {
        check(v, 1024, 1024, 1024, false, false, 99);
    }
}

#[test]
fn register_blocked_variants_transposed_at_large_odd_sizes() {
    check(MatmulVariant::Blocked, 515, 300, 257, true, false, 7);
    check(MatmulVariant::Blocked, 300, 515, 257, false, true, 8);
    check(MatmulVariant::Tiled, 515, 300, 257, true, true, 9);
    check(MatmulVariant::Texture, 515, 300, 257, true, false, 10);
    check(MatmulVariant::Texture, 300, 515, 257, false, true, 11);
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
    for v in [MatmulVariant::Blocked, MatmulVariant::Texture] {
        let c = matmul_with(v, &at, &bt2, false, true).unwrap();
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
                v.name(),
            );
        }
    }
}

#[test]
fn default_variant_follows_the_adapter() {
    // texture measured fastest on lavapipe, blocked on an H200.
    let want = match gpu().class() {
        DeviceClass::Cpu => MatmulVariant::Texture,
        DeviceClass::Gpu => MatmulVariant::Blocked,
    };
    assert_eq!(MatmulVariant::default_for(gpu()), want);
    for v in MatmulVariant::ALL {
        assert_eq!(v.name().parse::<MatmulVariant>().unwrap(), v);
    }
    let err = "fastest".parse::<MatmulVariant>().unwrap_err().to_string();
    assert!(err.contains("unknown matmul variant 'fastest'"), "{err}");
}
