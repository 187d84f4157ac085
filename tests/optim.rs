//! Each optimiser against an f64 CPU implementation of its rule, over a few
//! steps with random parameters and gradients, with and without exclusion
//! from weight decay (biases and norm parameters).

mod common;
use common::*;
use darkmatter::optim::{Optimizer, Param, Rule};

/// f64 reference of one step; `state` holds the rule's buffers.
/// The reference's parameter values and the rule's buffers.
type RefState = (Vec<f64>, Vec<Vec<f64>>);

fn reference_step(
    rule: Rule,
    wd: f64,
    lr: f64,
    t: i32,
    g: &[f64],
    refs: &mut RefState,
    exclude: bool,
) {
    let (w, state) = (&mut refs.0, &mut refs.1);
    let wd = if exclude { 0.0 } else { wd };
    match rule {
        Rule::Sgd { momentum } => {
            for i in 0..w.len() {
                let d = g[i] + wd * w[i];
                state[0][i] = momentum as f64 * state[0][i] + d;
                w[i] -= lr * state[0][i];
            }
        }
        Rule::AdamW { beta1, beta2, eps } => {
            let (b1, b2) = (beta1 as f64, beta2 as f64);
            let bc1 = 1.0 - b1.powi(t);
            let bc2 = 1.0 - b2.powi(t);
            for i in 0..w.len() {
                w[i] *= 1.0 - lr * wd;
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * g[i];
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * g[i] * g[i];
                let denom = state[1][i].sqrt() / bc2.sqrt() + eps as f64;
                w[i] -= lr / bc1 * state[0][i] / denom;
            }
        }
        Rule::Lars { momentum, eta } => {
            let d: Vec<f64> = (0..w.len()).map(|i| g[i] + wd * w[i]).collect();
            let mut q = 1.0;
            if !exclude {
                let wn = w.iter().map(|v| v * v).sum::<f64>().sqrt();
                let dn = d.iter().map(|v| v * v).sum::<f64>().sqrt();
                if wn > 0.0 && dn > 0.0 {
                    q = eta as f64 * wn / dn;
                }
            }
            for i in 0..w.len() {
                state[0][i] = momentum as f64 * state[0][i] + q * d[i];
                w[i] -= lr * state[0][i];
            }
        }
    }
}

fn run(rule: Rule) {
    let mut rng = Rng::new(rule.name().len() as u64);
    let shapes: [(&str, &[usize], bool); 2] = [("weight", &[7, 13], false), ("bias", &[13], true)];
    let wd = 0.05;
    let mut opt = Optimizer::new(rule, wd as f32);
    let mut values = Vec::new();
    let mut refs = Vec::new();
    for (_, shape, _) in shapes {
        let (data, t) = random(&mut rng, shape);
        values.push(t);
        let n = data.len();
        let buffers = if let Rule::AdamW { .. } = rule { 2 } else { 1 };
        refs.push((
            data.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
            vec![vec![0f64; n]; buffers],
        ));
    }
    for (t, lr) in [(1, 0.5f32), (2, 0.3), (3, 0.1)] {
        let grads: Vec<(Vec<f32>, darkmatter::Tensor)> =
            shapes.iter().map(|(_, s, _)| random(&mut rng, s)).collect();
        let params: Vec<Param> = shapes
            .iter()
            .zip(&values)
            .zip(&grads)
            .map(|(((name, _, exclude), v), (_, g))| Param {
                name,
                value: v,
                grad: g,
                exclude: *exclude,
            })
            .collect();
        opt.step(&params, lr).unwrap();
        for (k, (_, _, exclude)) in shapes.iter().enumerate() {
            let g: Vec<f64> = grads[k].0.iter().map(|&v| v as f64).collect();
            reference_step(rule, wd, lr as f64, t, &g, &mut refs[k], *exclude);
            let got = values[k].to_vec().unwrap();
            assert_close(
                &got,
                &refs[k].0,
                1e-4,
                1e-5,
                &format!("{} step {t} param {k}", rule.name()),
            );
        }
    }
    // The state is exposed under PyTorch's names and round-trips.
    let state = opt.state_tensors();
    let expected = if let Rule::AdamW { .. } = rule { 4 } else { 2 };
    assert_eq!(state.len(), expected);
    assert!(
        state
            .iter()
            .all(|(n, _)| n.starts_with("weight.") || n.starts_with("bias."))
    );
    // Through the host, as a checkpoint stores it.
    let saved: Vec<(String, darkmatter::Tensor)> = state
        .iter()
        .map(|(n, t)| (n.clone(), upload(&t.to_vec().unwrap(), t.shape())))
        .collect();
    let mut restored = Optimizer::new(rule, wd as f32);
    restored.load_state(opt.steps(), saved).unwrap();
    assert_eq!(restored.state_tensors().len(), expected);
    // One more step from the restored state gives the same bits as one
    // more step of the original.
    let copies: Vec<darkmatter::Tensor> = values
        .iter()
        .map(|v| upload(&v.to_vec().unwrap(), v.shape()))
        .collect();
    let grads: Vec<(Vec<f32>, darkmatter::Tensor)> =
        shapes.iter().map(|(_, s, _)| random(&mut rng, s)).collect();
    for (opt, targets) in [(&mut opt, &values), (&mut restored, &copies)] {
        let params: Vec<Param> = shapes
            .iter()
            .zip(targets)
            .zip(&grads)
            .map(|(((name, _, exclude), v), (_, g))| Param {
                name,
                value: v,
                grad: g,
                exclude: *exclude,
            })
            .collect();
        opt.step(&params, 0.2).unwrap();
    }
    for (k, (v, c)) in values.iter().zip(&copies).enumerate() {
        let (a, b) = (v.to_vec().unwrap(), c.to_vec().unwrap());
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        assert_eq!(
            bits(&a),
            bits(&b),
            "{} param {k} after a restored step",
            rule.name()
        );
    }
}

#[test]
fn sgd_matches_reference() {
    run("sgd".parse::<Rule>().unwrap());
}

#[test]
fn adamw_matches_reference() {
    run("adamw".parse::<Rule>().unwrap());
}

#[test]
fn lars_matches_reference() {
    run("lars".parse::<Rule>().unwrap());
}

#[test]
fn bad_optimizer_input_is_an_error() {
    assert!(
        "adagrad"
            .parse::<Rule>()
            .unwrap_err()
            .to_string()
            .contains("adagrad")
    );
    let w = upload(&[1.0; 4], &[4]);
    let g = upload(&[1.0; 3], &[3]);
    let mut opt = Optimizer::new("sgd".parse::<Rule>().unwrap(), 0.0);
    let e = opt
        .step(
            &[Param {
                name: "w",
                value: &w,
                grad: &g,
                exclude: false,
            }],
            0.1,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("[4]") && e.to_string().contains("[3]"),
        "{e}"
    );
}
