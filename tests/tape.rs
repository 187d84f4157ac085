//! The open tape: custom ops that bring their own backward rule, the
//! stop-gradient, no-grad tapes, and the EMA update of target networks.

mod common;
#[path = "common/layers.rs"]
mod layers;

use common::*;
use darkmatter::kernels::{BinaryOp, elementwise as ew};
use darkmatter::nn::{ConvNet, Init, Module, Projector};
use darkmatter::optim::ema;
use darkmatter::{CustomOp, Error, Op, Result, Tape, Tensor};
use layers::{numeric_grad, to_f64};

/// `x * y` recorded as a custom op, with its backward written here: d/dx =
/// g y, d/dy = g x. What a fused loss outside the crate would do.
#[derive(Debug)]
struct Product;

impl CustomOp for Product {
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, y) = (&saved[0], &saved[1]);
        Ok(vec![
            needs[0]
                .then(|| ew::binary(g, y, BinaryOp::Mul))
                .transpose()?,
            needs[1]
                .then(|| ew::binary(g, x, BinaryOp::Mul))
                .transpose()?,
        ])
    }
}

#[test]
fn a_custom_op_brings_its_own_backward() {
    let mut rng = Rng::new(1);
    let (n, d) = (7, 19);
    let (xd, x) = random(&mut rng, &[n, d]);
    let (yd, y) = random(&mut rng, &[n, d]);
    let (rd, r) = random(&mut rng, &[n, d]);
    let mut tape = Tape::new(gpu());
    let (xv, yv) = (tape.param(&x).unwrap(), tape.param(&y).unwrap());
    let out = ew::binary(&x, &y, BinaryOp::Mul).unwrap();
    let p = tape
        .record_custom(Product, &[xv, yv], out, vec![x.clone(), y.clone()])
        .unwrap();
    assert!(matches!(tape.nodes().last().unwrap().op, Op::Custom(_)));
    assert!(tape.to_string().contains("Product"), "{tape}");
    // L = sum(x * y * r): dL/dx = y r, dL/dy = x r.
    let rv = tape.constant(&r).unwrap();
    let w = tape.mul(p, rv).unwrap();
    let l = tape.sum_all(w).unwrap();
    let grads = tape.backward(l).unwrap();
    let want_x: Vec<f64> = yd.iter().zip(&rd).map(|(a, b)| (*a * *b) as f64).collect();
    let want_y: Vec<f64> = xd.iter().zip(&rd).map(|(a, b)| (*a * *b) as f64).collect();
    let got_x = grads.get(xv).unwrap().to_vec().unwrap();
    let got_y = grads.get(yv).unwrap().to_vec().unwrap();
    assert_close(&got_x, &want_x, 1e-6, 1e-7, "d/dx");
    assert_close(&got_y, &want_y, 1e-6, 1e-7, "d/dy");
    // Central differences of the f64 loss at a few coordinates.
    let loss = |x: &[f64]| -> f64 {
        x.iter()
            .zip(&yd)
            .zip(&rd)
            .map(|((a, b), c)| a * *b as f64 * *c as f64)
            .sum()
    };
    let fd = numeric_grad(&to_f64(&xd), loss);
    assert_close(&got_x, &fd, 1e-4, 1e-5, "d/dx vs finite differences");
}

/// A custom rule that returns the wrong number of gradients is a typed
/// error, not a panic.
#[derive(Debug)]
struct Broken;

impl CustomOp for Broken {
    fn backward(&self, _: &[Tensor], _: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![])
    }
}

#[test]
fn a_custom_rule_with_the_wrong_arity_is_an_error() {
    let mut tape = Tape::new(gpu());
    let x = tape.param(&upload(&[1.0, 2.0], &[2])).unwrap();
    let y = tape
        .record_custom(Broken, &[x], upload(&[3.0], &[]), vec![])
        .unwrap();
    let e = tape.backward(y).unwrap_err();
    assert!(
        matches!(e, Error::Invalid { .. }) && e.to_string().contains("0 gradients for 1 inputs"),
        "{e}"
    );
}

/// L = sum(x * detach(x) * r): the stop-gradient makes dL/dx = x r, where
/// without it the gradient would be 2 x r.
#[test]
fn detach_stops_the_gradient_and_keeps_the_value() {
    let mut rng = Rng::new(2);
    let shape = [5, 11];
    let (xd, x) = random(&mut rng, &shape);
    let (rd, r) = random(&mut rng, &shape);
    let mut tape = Tape::new(gpu());
    let xv = tape.param(&x).unwrap();
    let stopped = tape.detach(xv).unwrap();
    assert_eq!(tape.value(stopped).unwrap().to_vec().unwrap(), xd);
    let sq = tape.mul(xv, stopped).unwrap();
    let rv = tape.constant(&r).unwrap();
    let w = tape.mul(sq, rv).unwrap();
    let l = tape.sum_all(w).unwrap();
    let grads = tape.backward(l).unwrap();
    let want: Vec<f64> = xd.iter().zip(&rd).map(|(a, b)| (*a * *b) as f64).collect();
    assert_close(
        &grads.get(xv).unwrap().to_vec().unwrap(),
        &want,
        1e-6,
        1e-7,
        "d/dx",
    );
    assert!(grads.get(stopped).is_none());
}

/// A no-grad forward computes the same values as a recording one, keeps no
/// tensor for a backward, and refuses a backward.
#[test]
fn a_no_grad_tape_keeps_nothing_for_a_backward() {
    let mut rng = Rng::new(3);
    let (_, x) = random(&mut rng, &[4, 1, 12, 12]);
    let mut net = ConvNet::new(gpu(), 1, &mut Init::new(4)).unwrap();

    let mut grad_tape = Tape::new(gpu());
    let xv = grad_tape.constant(&x).unwrap();
    let y = net.forward(&mut grad_tape, xv, false).unwrap();
    let want = grad_tape.value(y).unwrap().to_vec().unwrap();
    assert!(grad_tape.nodes().iter().any(|n| !n.saved.is_empty()));

    let mut tape = Tape::no_grad(gpu());
    assert!(!tape.records_gradients());
    let xv = tape.constant(&x).unwrap();
    let y = net.forward(&mut tape, xv, false).unwrap();
    assert_eq!(tape.value(y).unwrap().to_vec().unwrap(), want);
    assert!(tape.nodes().iter().all(|n| n.saved.is_empty()), "{tape}");
    let l = tape.sum_all(y).unwrap();
    let e = tape.backward(l).unwrap_err();
    assert!(e.to_string().contains("no_grad"), "{e}");
}

/// `release` hands a no-grad tape's value back at once (the modules call
/// it on every activation once the next op has read it), leaves a leaf
/// alone, and changes nothing on a recording tape.
#[test]
fn release_frees_values_of_a_no_grad_tape_only() {
    let x = upload(&[1.0, -2.0, 3.0], &[3]);
    let mut tape = Tape::no_grad(gpu());
    let xv = tape.constant(&x).unwrap();
    let y = tape.relu(xv).unwrap();
    let z = tape.square(y).unwrap();
    tape.release(y).unwrap();
    tape.release(xv).unwrap();
    assert!(matches!(tape.value(y), Err(Error::Released(_))));
    assert_eq!(tape.value(xv).unwrap().to_vec().unwrap(), [1.0, -2.0, 3.0]);
    assert_eq!(tape.value(z).unwrap().to_vec().unwrap(), [1.0, 0.0, 9.0]);

    let mut tape = Tape::new(gpu());
    let xv = tape.param(&x).unwrap();
    let y = tape.relu(xv).unwrap();
    tape.release(y).unwrap();
    assert!(tape.value(y).is_ok());
}

/// A no-grad encoder forward holds one layer's activations at a time: its
/// peak memory stays well below that of the same forward on a recording
/// tape (which must keep them for the backward).
#[test]
fn a_no_grad_forward_does_not_hold_its_activations() {
    let gpu = darkmatter::Gpu::new().unwrap();
    let x = Tensor::from_slice(&gpu, &vec![0.5; 32 * 28 * 28], &[32, 1, 28, 28]).unwrap();
    let mut net = ConvNet::new(&gpu, 1, &mut Init::new(4)).unwrap();
    let mut peak = |grad: bool| {
        gpu.sync().unwrap();
        gpu.reset_peak();
        let mut tape = if grad {
            Tape::new(&gpu)
        } else {
            Tape::no_grad(&gpu)
        };
        let xv = tape.constant(&x).unwrap();
        let y = net.forward(&mut tape, xv, true).unwrap();
        tape.value(y).unwrap().to_vec().unwrap();
        gpu.pool_stats().peak_live_bytes
    };
    // The recording tape keeps every convolution's output and every batch
    // norm + relu output for the backward, about 1.9x a no-grad forward's
    // peak here; a no-grad forward that held its activations would reach
    // the same peak.
    let (recording, no_grad) = (peak(true), peak(false));
    assert!(
        no_grad * 3 < recording * 2,
        "peak {no_grad} bytes without gradients, {recording} with"
    );
}

/// target = m target + (1 - m) online, against f64, on a length that is
/// not a multiple of the workgroup; m = 1 leaves the target bit for bit.
#[test]
fn ema_update_matches_reference() {
    let mut rng = Rng::new(5);
    let shape = [3, 7, 37];
    let (td, t) = random(&mut rng, &shape);
    let (od, o) = random(&mut rng, &shape);
    for m in [0.0f32, 0.37, 0.996] {
        let avg = t.deep_clone().unwrap();
        ema::update(&avg, &o, m).unwrap();
        let want: Vec<f64> = td
            .iter()
            .zip(&od)
            .map(|(&a, &b)| m as f64 * a as f64 + (1.0 - m as f64) * b as f64)
            .collect();
        assert_close(
            &avg.to_vec().unwrap(),
            &want,
            1e-6,
            1e-7,
            &format!("m = {m}"),
        );
    }
    let avg = t.deep_clone().unwrap();
    ema::update(&avg, &o, 1.0).unwrap();
    assert_eq!(avg.to_vec().unwrap(), td);

    for bad in [-0.1, 1.5, f32::NAN] {
        let e = ema::update(&avg, &o, bad).unwrap_err();
        assert!(e.to_string().contains("momentum must be in [0, 1]"), "{e}");
    }
    let (_, other) = random(&mut rng, &[3, 7, 36]);
    assert!(matches!(
        ema::update(&avg, &other, 0.5),
        Err(Error::Shape { .. })
    ));
}

/// Over a whole module: every parameter and running statistic moves, the
/// counters do not; modules of another shape are refused before anything
/// changes.
#[test]
fn ema_update_over_a_module() {
    let target = Projector::new(gpu(), &[6, 9, 5], &mut Init::new(1)).unwrap();
    let online = Projector::new(gpu(), &[6, 9, 5], &mut Init::new(2)).unwrap();
    let before: Vec<Vec<f32>> = target
        .parameters()
        .iter()
        .map(|(_, p)| p.tensor.to_vec().unwrap())
        .collect();
    ema::update_module(&target, &online, 0.9).unwrap();
    for (((name, p), (_, q)), b) in target
        .parameters()
        .iter()
        .zip(online.parameters())
        .zip(&before)
    {
        let o = q.tensor.to_vec().unwrap();
        let want: Vec<f64> = b
            .iter()
            .zip(&o)
            .map(|(&t, &o)| 0.9 * t as f64 + 0.1 * o as f64)
            .collect();
        assert_close(&p.tensor.to_vec().unwrap(), &want, 1e-6, 1e-7, name);
    }
    let other = Projector::new(gpu(), &[6, 9, 4], &mut Init::new(2)).unwrap();
    let snapshot = target.parameters()[0].1.tensor.to_vec().unwrap();
    assert!(ema::update_module(&target, &other, 0.9).is_err());
    assert_eq!(target.parameters()[0].1.tensor.to_vec().unwrap(), snapshot);
}
