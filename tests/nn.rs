//! The modules end to end: a ConvNet forward and backward against an f64
//! CPU reference built from the same parameters, PyTorch names, checkpoint
//! round trips, and typed errors for bad inputs and bad files.

mod common;
#[path = "common/layers.rs"]
mod layers;

use std::collections::HashMap;

use common::*;
use darkmatter::nn::{self, ConvNet, Init, Module, Projector, ResNet18};
use darkmatter::{Error, Tape};
use layers::{Conv, dot, to_f64};

/// The ConvNet in f64: conv (no bias) -> batch norm (training) -> relu, four
/// times, then the spatial mean. `p` maps PyTorch names to values.
fn convnet_ref(
    p: &HashMap<String, Vec<f64>>,
    x: &[f64],
    n: usize,
    c: usize,
    hw: usize,
) -> Vec<f64> {
    let mut h = x.to_vec();
    let (mut c, mut hw) = (c, hw);
    for (i, (o, stride)) in [(32, 1), (64, 2), (128, 2), (128, 1)]
        .into_iter()
        .enumerate()
    {
        let s = Conv {
            n,
            c,
            h: hw,
            w: hw,
            o,
            k: 3,
            stride,
            pad: 1,
        };
        let w = &p[&format!("conv{}.weight", i + 1)];
        let y = layers::conv2d(&s, &h, w, None);
        let (g, b) = (
            &p[&format!("bn{}.weight", i + 1)],
            &p[&format!("bn{}.bias", i + 1)],
        );
        let l = s.oh() * s.ow();
        h = layers::relu(&layers::batch_norm_train(&y, n, o, l, Some((g, b))).0);
        (c, hw) = (o, s.oh());
    }
    layers::row_means(&h, hw * hw)
}

#[test]
fn convnet_forward_and_backward_match_reference() {
    let (n, c, hw) = (3, 1, 7);
    let mut net = ConvNet::new(gpu(), c, &mut Init::new(5)).unwrap();
    let mut rng = Rng::new(6);
    let x = rng.vec(n * c * hw * hw, -1.0, 1.0);
    let r = rng.vec(n * ConvNet::DIM, -1.0, 1.0);

    let mut tape = Tape::new(gpu());
    let xv = tape.constant(&upload(&x, &[n, c, hw, hw])).unwrap();
    let rep = net.forward(&mut tape, xv, true).unwrap();
    assert_eq!(tape.shape(rep).unwrap(), [n, ConvNet::DIM]);
    let got = tape.value(rep).unwrap().to_vec().unwrap();
    let rv = tape.constant(&upload(&r, &[n, ConvNet::DIM])).unwrap();
    let l = tape.mul(rep, rv).unwrap();
    let l = tape.sum_all(l).unwrap();
    let grads = tape.backward(l).unwrap();

    let params: HashMap<String, Vec<f64>> = net
        .parameters()
        .into_iter()
        .map(|(name, p)| (name, to_f64(&p.tensor.to_vec().unwrap())))
        .collect();
    assert_eq!(params.len(), 12, "4 conv weights, 4 bn weights and biases");
    let x64 = to_f64(&x);
    let r64 = to_f64(&r);
    assert_close(
        &got,
        &convnet_ref(&params, &x64, n, c, hw),
        1e-3,
        1e-4,
        "ConvNet forward",
    );

    // Central differences of the reference at a few coordinates of every
    // parameter tensor.
    for (name, p) in net.parameters() {
        let g = grads.get(p.var().unwrap()).unwrap().to_vec().unwrap();
        let len = g.len();
        for k in 0..5 {
            let i = (k * 7919 + 13) % len;
            let mut plus = params.clone();
            let mut minus = params.clone();
            plus.get_mut(&name).unwrap()[i] += 1e-4;
            minus.get_mut(&name).unwrap()[i] -= 1e-4;
            let up = dot(&convnet_ref(&plus, &x64, n, c, hw), &r64);
            let down = dot(&convnet_ref(&minus, &x64, n, c, hw), &r64);
            let want = (up - down) / 2e-4;
            assert_close(
                &g[i..i + 1],
                &[want],
                2e-2,
                2e-3,
                &format!("dL/d{name}[{i}]"),
            );
        }
    }
}

#[test]
fn convnet_takes_grey_28_and_rgb_32() {
    for (c, hw) in [(1, 28), (3, 32)] {
        let mut net = ConvNet::new(gpu(), c, &mut Init::new(1)).unwrap();
        let mut tape = Tape::new(gpu());
        let (_, x) = random(&mut Rng::new(2), &[2, c, hw, hw]);
        let x = tape.constant(&x).unwrap();
        let y = net.forward(&mut tape, x, false).unwrap();
        assert_eq!(tape.shape(y).unwrap(), [2, 128]);
    }
}

#[test]
fn resnet18_shapes_names_and_backward() {
    let mut net = ResNet18::new(gpu(), 3, &mut Init::new(3)).unwrap();
    let count: usize = net.parameters().iter().map(|(_, p)| p.tensor.numel()).sum();
    // torchvision resnet18 (11,689,512) with a 3x3 stem and no fc.
    assert_eq!(
        count,
        11_689_512 - 64 * 3 * 49 + 64 * 3 * 9 - (512 * 1000 + 1000)
    );
    let names: Vec<String> = net.parameters().into_iter().map(|(n, _)| n).collect();
    for want in [
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing");
    }
    let mut tape = Tape::new(gpu());
    let (_, x) = random(&mut Rng::new(4), &[2, 3, 8, 8]);
    let x = tape.constant(&x).unwrap();
    let y = net.forward(&mut tape, x, true).unwrap();
    assert_eq!(tape.shape(y).unwrap(), [2, 512]);
    let l = tape.square(y).unwrap();
    let l = tape.sum_all(l).unwrap();
    let grads = tape.backward(l).unwrap();
    let g = grads
        .get(net.parameters()[0].1.var().unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0));
}

fn eval_output(m: &mut dyn Module, x: &darkmatter::Tensor) -> Vec<f32> {
    let mut tape = Tape::new(gpu());
    let x = tape.constant(x).unwrap();
    let y = m.forward(&mut tape, x, false).unwrap();
    tape.value(y).unwrap().to_vec().unwrap()
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "darkmatter-nn-{}-{name}.safetensors",
        std::process::id()
    ))
}

#[test]
fn checkpoint_round_trip_is_bit_exact() {
    let mut enc = ConvNet::new(gpu(), 3, &mut Init::new(7)).unwrap();
    let mut proj = Projector::new(gpu(), &[128, 64, 32], &mut Init::new(8)).unwrap();
    let (_, x) = random(&mut Rng::new(9), &[4, 3, 8, 8]);
    // A training step moves the running statistics away from their defaults.
    let mut tape = Tape::new(gpu());
    let xv = tape.constant(&x).unwrap();
    let h = enc.forward(&mut tape, xv, true).unwrap();
    proj.forward(&mut tape, h, true).unwrap();
    drop(tape);

    let path = temp("round-trip");
    nn::save(&path, &[("encoder", &enc), ("projector", &proj)]).unwrap();
    let file = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&file).unwrap();
    let mut names = st.names();
    names.sort();
    for want in [
        "encoder.conv1.weight",
        "encoder.bn1.running_var",
        "encoder.bn4.num_batches_tracked",
        "projector.layers.0.bias",
        "projector.layers.1.running_mean",
        "projector.layers.3.weight",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(
        !names.contains(&"projector.layers.3.bias"),
        "the last linear has no bias"
    );
    assert_eq!(
        st.tensor("encoder.bn2.num_batches_tracked").unwrap().data(),
        1i64.to_le_bytes()
    );

    let mut loaded = nn::load(gpu(), &path).unwrap();
    assert_eq!(loaded[0].0, "encoder");
    assert_eq!(loaded[0].1.arch(), enc.arch());
    assert_eq!(loaded[1].1.arch(), proj.arch());
    let before = eval_output(&mut enc, &x);
    let after = eval_output(loaded[0].1.as_mut(), &x);
    assert_eq!(
        before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        after.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let h = darkmatter::Tensor::from_slice(gpu(), &before, &[4, 128]).unwrap();
    assert_eq!(
        eval_output(&mut proj, &h),
        eval_output(loaded[1].1.as_mut(), &h)
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_checkpoints_and_inputs_are_typed_errors() {
    let proj = Projector::new(gpu(), &[16, 8, 4], &mut Init::new(1)).unwrap();
    let path = temp("bad");
    nn::save(&path, &[("projector", &proj)]).unwrap();

    // A mis-shaped tensor names itself and both shapes.
    let other = Projector::new(gpu(), &[16, 8, 5], &mut Init::new(1)).unwrap();
    let err = nn::load_into(&path, &[("projector", &other)]).unwrap_err();
    assert!(matches!(err, Error::CheckpointTensor { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("projector.layers.3.weight")
            && msg.contains("[5, 8]")
            && msg.contains("[4, 8]"),
        "{msg}"
    );

    // A missing tensor (the file holds "projector.*", not "head.*").
    let msg = nn::load_into(&path, &[("head", &proj)])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("head.layers.0.weight") && msg.contains("missing"),
        "{msg}"
    );

    // A truncated file.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = nn::load(gpu(), &path).err().unwrap();
    assert!(
        matches!(err, Error::Checkpoint { .. }) && err.to_string().contains("truncated"),
        "{err}"
    );
    let err = nn::load_into(&path, &[("projector", &proj)]).unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        nn::load(gpu(), &path).err().unwrap(),
        Error::Checkpoint { .. }
    ));

    // Wrong channel count into an encoder.
    let mut enc = ConvNet::new(gpu(), 1, &mut Init::new(1)).unwrap();
    let mut tape = Tape::new(gpu());
    let (_, x) = random(&mut Rng::new(1), &[2, 3, 8, 8]);
    let x = tape.constant(&x).unwrap();
    let msg = enc.forward(&mut tape, x, true).unwrap_err().to_string();
    assert!(
        msg.contains("[2, 3, 8, 8]") && msg.contains("[N, 1, H, W]"),
        "{msg}"
    );
}
