//! Shared by the integration tests: one device per test binary, seeded random
//! inputs, f64 reference maths and comparisons.
#![allow(dead_code)]

use std::sync::OnceLock;

use darkmatter::{Gpu, Tensor};

/// The device every test of a binary shares. No adapter is a failure, never a
/// skip: CI always has lavapipe.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|e| panic!("tests need an adapter: {e}")))
}

/// A small counter-based generator (SplitMix64): the same seed gives the same
/// numbers on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Values in ±[lo, hi): bounded away from zero (for divisors, relu kinks).
    pub fn away_from_zero(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.uniform(lo, hi);
                if self.next_u64() & 1 == 0 { v } else { -v }
            })
            .collect()
    }
}

pub fn upload(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).expect("upload")
}

pub fn random(rng: &mut Rng, shape: &[usize]) -> (Vec<f32>, Tensor) {
    let n = shape.iter().product();
    let data = rng.vec(n, -1.0, 1.0);
    let t = upload(&data, shape);
    (data, t)
}

/// Asserts |got - want| <= atol + rtol * |want| element by element.
pub fn assert_close(got: &[f32], want: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= atol + rtol * w.abs() && g.is_finite(),
            "{what}: element {i}: got {g}, want {w} (err {err:.3e})"
        );
    }
}

/// f64 reference: C = op(A) op(B) for row-major A, B.
pub fn matmul_ref(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for kk in 0..k {
            let av = if ta { a[kk * m + i] } else { a[i * k + kk] } as f64;
            for j in 0..n {
                let bv = if tb { b[j * k + kk] } else { b[kk * n + j] } as f64;
                c[i * n + j] += av * bv;
            }
        }
    }
    c
}
