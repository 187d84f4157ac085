//! Whole training steps against PyTorch (the idea of llm.c's
//! `test_gpt2.c`): `tests/fixtures/golden_step.safetensors` holds a small
//! ConvNet with each method's projector and predictor as darkmatter
//! initialised them, two steps of fixed inputs, and what PyTorch computed
//! from them (`tests/fixtures/golden_step.py`, run once, offline): the loss
//! of each step, every parameter's gradient at the first step, and after
//! two AdamW steps every parameter, batch-norm running statistic and
//! counter of every part, BYOL's EMA target included. darkmatter runs the
//! same two steps through its generic training step and must agree, for
//! VICReg, SimCLR, Barlow Twins, BYOL and SimSiam.

mod common;
use common::*;

use std::path::PathBuf;

use darkmatter::nn::{self, Arch, ConvNetWidths, Entry, Module};
use darkmatter::objectives::{ObjectiveConfig, StepInput};
use darkmatter::optim::{Optimizer, Rule};
use darkmatter::train::step::{self, StepContext};
use safetensors::{Dtype, SafeTensors};

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden_step.safetensors")
}

struct Fixture {
    bytes: Vec<u8>,
    settings: serde_json::Value,
}

impl Fixture {
    fn open() -> Fixture {
        let bytes = std::fs::read(fixture_path()).expect("the golden fixture");
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("a safetensors file");
        let settings = serde_json::from_str(&header.metadata().as_ref().unwrap()["golden"])
            .expect("the fixture's settings");
        Fixture { bytes, settings }
    }

    fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let file = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = file
            .tensor(name)
            .unwrap_or_else(|_| panic!("{name} missing from the fixture"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (v, t.shape().to_vec())
    }

    fn i64(&self, name: &str) -> i64 {
        let file = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = file.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        i64::from_le_bytes(t.data().try_into().unwrap())
    }
}

/// |got - want| <= rtol |want| + atol max|want|, element by element.
fn close(got: &[f32], want: &[f32], rtol: f32, atol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= rtol * w.abs() + atol * scale && g.is_finite(),
            "{what}[{i}]: darkmatter {g}, PyTorch {w} (err {err:.3e}, largest {scale:.3e})"
        );
    }
}

fn check_method(fx: &Fixture, config: &ObjectiveConfig) {
    let s = &fx.settings;
    let method = config.method().name();
    let widths: [usize; 4] = serde_json::from_value(s["widths"].clone()).unwrap();
    let encoder = Arch::ConvNet {
        in_channels: s["channels"].as_u64().unwrap() as usize,
        widths: ConvNetWidths(widths),
    };
    // Another seed than the fixture's: every value must come from the file.
    let mut objective = config.build(gpu(), &encoder, 1234).unwrap();
    {
        let parts = objective.parts();
        let prefixes: Vec<String> = parts
            .iter()
            .map(|p| format!("init.{method}.{}", p.name))
            .collect();
        let modules: Vec<(&str, &dyn Module)> = parts
            .iter()
            .zip(&prefixes)
            .map(|(p, prefix)| (prefix.as_str(), p.module))
            .collect();
        nn::load_into(&fixture_path(), &modules).unwrap();
    }
    let betas: [f32; 2] = serde_json::from_value(s["betas"].clone()).unwrap();
    let rule = Rule::AdamW {
        beta1: betas[0],
        beta2: betas[1],
        eps: s["eps"].as_f64().unwrap() as f32,
    };
    let mut optimizer = Optimizer::new(rule, s["weight_decay"].as_f64().unwrap() as f32);
    let lr = s["lr"].as_f64().unwrap() as f32;
    let steps = s["steps"].as_u64().unwrap();
    // A linear layer's bias followed by batch norm has a gradient of
    // exactly zero (the norm subtracts it again): both frameworks compute
    // rounding noise there, of either sign, which Adam then turns into
    // steps of either sign (the fixture's eps of 1e-3 keeps them well
    // below lr, so that the running mean after that layer stays
    // comparable). Such parameters are recognised by a gradient below
    // 1e-5 of the largest; for them, the gradient must be as small in
    // darkmatter, and the weights may differ by the steps' length.
    let mut noise: Vec<String> = Vec::new();
    for k in 0..steps {
        let view = |v: usize| {
            let (data, shape) = fx.f32(&format!("input.{k}.{v}"));
            upload(&data, &shape)
        };
        let input = StepInput::views(vec![view(0), view(1)]);
        let mut ctx = StepContext {
            gpu: gpu(),
            objective: objective.as_mut(),
            optimizer: &mut optimizer,
            total_steps: steps,
            dist: None,
        };
        let (pending, gradients) = step::step_with_gradients(&mut ctx, &input, k, lr).unwrap();
        let losses = pending.wait().unwrap();
        let (want, _) = fx.f32(&format!("loss.{method}.{k}"));
        close(
            &[losses.loss],
            &want,
            1e-4,
            1e-6,
            &format!("{method} loss at step {k}"),
        );
        if k == 0 {
            assert!(!gradients.is_empty());
            let largest = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
            let global = gradients
                .iter()
                .map(|(name, _)| largest(&fx.f32(&format!("grad.{method}.{name}")).0))
                .fold(0f32, f32::max);
            for (name, g) in &gradients {
                let (want, shape) = fx.f32(&format!("grad.{method}.{name}"));
                assert_eq!(g.shape(), shape.as_slice(), "{method} {name}");
                let got = g.to_vec().unwrap();
                if largest(&want) < 1e-5 * global {
                    assert!(largest(&got) < 1e-5 * global, "{method} d/d{name}: {got:?}");
                    noise.push(name.clone());
                } else {
                    close(&got, &want, 1e-3, 1e-4, &format!("{method} d/d{name}"));
                }
            }
        }
    }
    let mut checked = 0;
    for part in objective.parts() {
        let mut entries = Vec::new();
        part.module.visit("", &mut entries);
        for (name, entry) in entries {
            let key = format!("after.{method}.{}.{name}", part.name);
            let what = format!("{method} {}.{name} after {steps} steps", part.name);
            match entry {
                Entry::Param(p) => {
                    let (want, _) = fx.f32(&key);
                    let got = p.tensor.to_vec().unwrap();
                    if noise.contains(&format!("{}.{name}", part.name)) {
                        for (g, w) in got.iter().zip(&want) {
                            assert!((g - w).abs() <= 2.0 * lr * steps as f32, "{what}");
                        }
                    } else {
                        close(&got, &want, 1e-4, 1e-4, &what);
                    }
                }
                Entry::Buffer(t) => {
                    let (want, _) = fx.f32(&key);
                    close(&t.to_vec().unwrap(), &want, 1e-4, 1e-4, &what);
                }
                Entry::Counter(c) => assert_eq!(c.get(), fx.i64(&key), "{what}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "{method}: only {checked} entries checked");
}

fn config(fx: &Fixture, method: &str) -> ObjectiveConfig {
    let all: Vec<ObjectiveConfig> =
        serde_json::from_value(fx.settings["objectives"].clone()).unwrap();
    all.into_iter()
        .find(|o| o.method().name() == method)
        .unwrap_or_else(|| panic!("{method} is not in the fixture"))
}

#[test]
fn vicreg_step_matches_pytorch() {
    let fx = Fixture::open();
    check_method(&fx, &config(&fx, "vicreg"));
}

#[test]
fn simclr_step_matches_pytorch() {
    let fx = Fixture::open();
    check_method(&fx, &config(&fx, "simclr"));
}

#[test]
fn barlow_step_matches_pytorch() {
    let fx = Fixture::open();
    check_method(&fx, &config(&fx, "barlow"));
}

#[test]
fn byol_step_matches_pytorch() {
    let fx = Fixture::open();
    check_method(&fx, &config(&fx, "byol"));
}

#[test]
fn simsiam_step_matches_pytorch() {
    let fx = Fixture::open();
    check_method(&fx, &config(&fx, "simsiam"));
}
