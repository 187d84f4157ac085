//! Writes the starting point of the PyTorch golden step: a small ConvNet
//! (widths 4-8-16-16, 3 x 10 x 10 images) with each method's projector and
//! predictor as darkmatter initialises them, two steps of fixed random
//! views, and the optimiser settings, in one safetensors file.
//! `tests/fixtures/golden_step.py` reads it, runs the same two steps in
//! PyTorch and writes `tests/fixtures/golden_step.safetensors`, which
//! `tests/golden.rs` compares darkmatter's steps against:
//!
//!     cargo run --release --example golden_init -- /tmp/golden_init.safetensors
//!     python3 tests/fixtures/golden_step.py /tmp/golden_init.safetensors tests/fixtures/golden_step.safetensors

use darkmatter::nn::{self, Arch, ConvNetWidths, Module};
use darkmatter::objectives::ObjectiveConfig;
use darkmatter::{Gpu, Tensor};

/// What the fixture's steps are; `tests/golden.rs` reads it back from the
/// fixture's metadata.
fn settings() -> serde_json::Value {
    serde_json::json!({
        "channels": 3,
        "size": 10,
        "batch": 8,
        "widths": [4, 8, 16, 16],
        "steps": 2,
        "lr": 0.01,
        "weight_decay": 0.05,
        "betas": [0.9, 0.99],
        "eps": 1e-3,
        "objectives": [
            ObjectiveConfig::Vicreg { projector: vec![32, 32], coefficients: [25.0, 25.0, 1.0] },
            ObjectiveConfig::Simclr { projector: vec![32, 32], temperature: 0.2 },
            ObjectiveConfig::Barlow { projector: vec![32, 32], lambda: 0.0051 },
            ObjectiveConfig::Byol { projector: vec![32, 16], predictor: vec![32, 16], ema_momentum: 0.9 },
            ObjectiveConfig::Simsiam { projector: vec![32, 32], predictor: vec![8, 32] },
        ],
    })
}

/// A seeded normal sample (Box-Muller over SplitMix64).
fn normal(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed ^ 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f64 / (1u64 << 24) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (next().max(1e-12), next());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

fn main() -> darkmatter::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/golden_init.safetensors".into());
    let gpu = Gpu::new()?;
    let s = settings();
    let widths: [usize; 4] = serde_json::from_value(s["widths"].clone()).expect("widths");
    let (c, size, batch) = (3, 10, 8);
    let encoder = Arch::ConvNet {
        in_channels: c,
        widths: ConvNetWidths(widths),
    };
    let configs: Vec<ObjectiveConfig> =
        serde_json::from_value(s["objectives"].clone()).expect("objectives");
    let objectives = configs
        .iter()
        .map(|o| o.build(&gpu, &encoder, 0))
        .collect::<darkmatter::Result<Vec<_>>>()?;
    let mut prefixes = Vec::new();
    for (o, cfg) in objectives.iter().zip(&configs) {
        for part in o.parts() {
            prefixes.push((format!("init.{}.{}", cfg.method(), part.name), part.module));
        }
    }
    let parts: Vec<(&str, &dyn Module)> = prefixes.iter().map(|(p, m)| (p.as_str(), *m)).collect();
    let mut inputs = Vec::new();
    for step in 0..2u64 {
        for view in 0..2u64 {
            let data = normal(10 * step + view, batch * c * size * size);
            inputs.push((
                format!("input.{step}.{view}"),
                Tensor::from_slice(&gpu, &data, &[batch, c, size, size])?,
            ));
        }
    }
    nn::save_with(
        std::path::Path::new(&out),
        &parts,
        &inputs,
        &[("golden".to_string(), s.to_string())],
    )?;
    println!("wrote {out}");
    Ok(())
}
