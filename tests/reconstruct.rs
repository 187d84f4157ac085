//! The pieces of the reconstruction methods: keyed patch masks at every
//! resolution, pixel corruptions, the decoder's shapes and its mask token,
//! and a masked step that leaves the masked pixels' content unseen.

mod common;
use common::*;
use darkmatter::Tape;
use darkmatter::augment::{Corruption, Normalize, PatchMask};
use darkmatter::nn::{Decoder, Init, Module};

#[test]
fn masks_are_keyed_and_exact() {
    let m = PatchMask::draw(3, 7, 5, 28, 28, 4, 0.6).unwrap();
    assert_eq!(m, PatchMask::draw(3, 7, 5, 28, 28, 4, 0.6).unwrap());
    assert_ne!(m, PatchMask::draw(3, 8, 5, 28, 28, 4, 0.6).unwrap());
    assert_ne!(m, PatchMask::draw(4, 7, 5, 28, 28, 4, 0.6).unwrap());
    // round(0.6 * 49) = 29 patches of every image, and images differ.
    for i in 0..5 {
        assert_eq!(
            m.masked[i * 49..(i + 1) * 49]
                .iter()
                .filter(|&&b| b)
                .count(),
            29
        );
    }
    assert_ne!(m.masked[..49], m.masked[49..98]);
    assert_eq!(m.count(), 5 * 29);
    // Extreme ratios still leave something to see and something to fill.
    let few = PatchMask::draw(0, 0, 1, 8, 8, 4, 0.01).unwrap();
    let most = PatchMask::draw(0, 0, 1, 8, 8, 4, 0.99).unwrap();
    assert_eq!((few.count(), most.count()), (1, 3));
    for (h, w, p, r) in [
        (28, 28, 5, 0.5),
        (28, 28, 4, 1.0),
        (28, 28, 4, 0.0),
        (4, 4, 4, 0.5),
    ] {
        assert!(
            PatchMask::draw(0, 0, 1, h, w, p, r).is_err(),
            "{h} {w} {p} {r}"
        );
    }
}

/// At the input's resolution and at every feature map's, a pixel is kept
/// exactly when every patch it covers is visible.
#[test]
fn keep_masks_follow_the_patches_at_every_resolution() {
    let m = PatchMask::draw(1, 2, 2, 28, 28, 4, 0.5).unwrap();
    for (h, w) in [(28, 28), (14, 14), (7, 7), (1, 1)] {
        let keep = m.keep(gpu(), h, w).unwrap().to_vec().unwrap();
        assert_eq!(keep.len(), 2 * h * w);
        for i in 0..2 {
            for y in 0..h {
                for x in 0..w {
                    let f = 28 / h;
                    let covered = (y * f / 4..=((y + 1) * f - 1) / 4)
                        .flat_map(|py| (x * f / 4..=((x + 1) * f - 1) / 4).map(move |px| (py, px)));
                    let visible = covered
                        .clone()
                        .all(|(py, px)| !m.masked[(i * 7 + py) * 7 + px]);
                    assert_eq!(
                        keep[(i * h + y) * w + x],
                        visible as u32 as f32,
                        "{h}x{w} ({y}, {x})"
                    );
                }
            }
        }
    }
    assert!(m.keep(gpu(), 13, 13).is_err());
}

#[test]
fn corruptions_parse_and_draw_what_they_say() {
    for (text, want) in [
        ("gaussian:0.3", Corruption::Gaussian(0.3)),
        ("mask:0.5", Corruption::Mask(0.5)),
        ("salt-pepper:0.2", Corruption::SaltPepper(0.2)),
    ] {
        let c: Corruption = text.parse().unwrap();
        assert_eq!(c, want);
        assert_eq!(c.to_string(), text);
    }
    for bad in ["gaussian", "gaussian:-1", "mask:1", "blur:2", "mask:x"] {
        assert!(bad.parse::<Corruption>().is_err(), "{bad}");
    }
    let norm = Normalize {
        mean: [0.25; 3],
        std: [0.5; 3],
    };
    let shape = [4, 1, 16, 16];
    let n = 4 * 16 * 16;
    let (scale, shift) = Corruption::Gaussian(0.3)
        .draw(gpu(), shape, &norm, 1, 2, 0)
        .unwrap();
    assert!(scale.to_vec().unwrap().iter().all(|&s| s == 1.0));
    let noise = shift.to_vec().unwrap();
    let std = (noise.iter().map(|v| v * v).sum::<f32>() / n as f32).sqrt();
    // 0.3 pixel units are 0.6 normalised units at std 0.5.
    assert!((std - 0.6).abs() < 0.05, "{std}");
    let (scale, shift) = Corruption::SaltPepper(0.2)
        .draw(gpu(), shape, &norm, 1, 2, 0)
        .unwrap();
    let (scale, shift) = (scale.to_vec().unwrap(), shift.to_vec().unwrap());
    let hit: Vec<usize> = (0..n).filter(|&i| scale[i] == 0.0).collect();
    let frac = hit.len() as f32 / n as f32;
    assert!((frac - 0.2).abs() < 0.05, "{frac}");
    // Black is (0 - 0.25) / 0.5, white (1 - 0.25) / 0.5.
    assert!(hit.iter().all(|&i| shift[i] == -0.5 || shift[i] == 1.5));
    let (again, _) = Corruption::SaltPepper(0.2)
        .draw(gpu(), shape, &norm, 1, 2, 0)
        .unwrap();
    assert_eq!(again.to_vec().unwrap(), scale);
}

#[test]
fn the_decoder_reaches_the_image_and_fills_holes_with_its_token() {
    let mut dec = Decoder::new(gpu(), 12, &[8, 4], 3, true, &mut Init::new(1)).unwrap();
    let mut tape = Tape::new(gpu());
    let mut rng = Rng::new(2);
    let (_, z) = random(&mut rng, &[2, 12, 5, 5]);
    let zv = tape.param(&z).unwrap();
    let keep = upload(&[0.0; 50], &[2, 1, 5, 5]);
    let kv = tape.constant(&keep).unwrap();
    let y = dec.forward_masked(&mut tape, zv, kv, true).unwrap();
    assert_eq!(tape.shape(y).unwrap(), [2, 3, 20, 20]);
    // Everything masked: the output does not depend on z.
    let l = tape.sum_all(y).unwrap();
    let grads = tape.backward(l).unwrap();
    assert!(
        grads
            .get(zv)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .all(|&g| g == 0.0)
    );
    let names: Vec<String> = dec.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "mask_token");
    assert!(
        names.contains(&"layers.0.weight".to_string())
            && names.contains(&"layers.12.bias".to_string()),
        "{names:?}"
    );
}

/// SparK's emulation of sparse convolution: with the mask applied to the
/// input and after every encoder stage, what lies under the mask cannot
/// change the reconstruction (nor the encoder's view of the visible part).
#[test]
fn masked_content_is_never_seen() {
    use darkmatter::nn::{Arch, ConvNetWidths};
    use darkmatter::objectives::{ObjectiveConfig, StepInput};
    let mut config = ObjectiveConfig::Mae {
        patch: 4,
        mask_ratio: 0.5,
        norm_pix: true,
        decoder: vec![],
    };
    let arch = Arch::ConvNet {
        in_channels: 1,
        widths: ConvNetWidths([4, 8, 8, 8]),
    };
    config.fit_images(&arch, 16, 16).unwrap();
    let mut objective = config.build(gpu(), &arch, 3).unwrap();
    let mask = PatchMask::draw(5, 0, 2, 16, 16, 4, 0.5).unwrap();
    let mut rng = Rng::new(9);
    let a = rng.vec(2 * 256, -1.0, 1.0);
    let mut b = a.clone();
    for (i, v) in b.iter_mut().enumerate() {
        let (n, y, x) = (i / 256, (i / 16) % 16, i % 16);
        if mask.masked[(n * 4 + y / 4) * 4 + x / 4] {
            *v = rng.uniform(-3.0, 3.0);
        }
    }
    let mut out = Vec::new();
    for data in [&a, &b] {
        let input = StepInput {
            views: vec![upload(data, &[2, 1, 16, 16])],
            mask: Some(mask.clone()),
            corrupted: None,
            frames: Vec::new(),
        };
        let mut tape = Tape::no_grad(gpu());
        let y = objective.reconstruct(&mut tape, &input).unwrap().unwrap();
        out.push(tape.value(y).unwrap().to_vec().unwrap());
    }
    assert_eq!(out[0], out[1]);
    // And it does depend on what is visible.
    let mut c = a.clone();
    let visible = (0..512)
        .find(|&i| !mask.masked[((i / 256) * 4 + ((i / 16) % 16) / 4) * 4 + (i % 16) / 4])
        .unwrap();
    c[visible] += 1.0;
    let input = StepInput {
        views: vec![upload(&c, &[2, 1, 16, 16])],
        mask: Some(mask),
        corrupted: None,
        frames: Vec::new(),
    };
    let mut tape = Tape::no_grad(gpu());
    let y = objective.reconstruct(&mut tape, &input).unwrap().unwrap();
    assert_ne!(tape.value(y).unwrap().to_vec().unwrap(), out[0]);
}

/// The reconstruction measurement's baselines on images they must get
/// right: on a flat image the visible mean fills every hole exactly, and
/// diffusion as well; a linear ramp diffusion fills nearly exactly where
/// the mean cannot.
#[test]
fn reconstruction_baselines_are_exact_where_they_must_be() {
    use darkmatter::data::{Dataset, Split, SyntheticConfig, SyntheticDataset};
    use darkmatter::nn::{Arch, ConvNetWidths};
    use darkmatter::objectives::{InputSpec, ObjectiveConfig};
    use darkmatter::train::reconstruction;
    use std::sync::Arc;
    let data: Arc<dyn Dataset> = Arc::new(
        SyntheticDataset::new(
            SyntheticConfig {
                size: 16,
                train_len: 8,
                test_len: 8,
                ..SyntheticConfig::default()
            },
            Split::Test,
        )
        .unwrap(),
    );
    let mut config = ObjectiveConfig::Mae {
        patch: 4,
        mask_ratio: 0.5,
        norm_pix: false,
        decoder: vec![],
    };
    let arch = Arch::ConvNet {
        in_channels: 3,
        widths: ConvNetWidths([4, 8, 8, 8]),
    };
    config.fit_images(&arch, 16, 16).unwrap();
    let mut objective = config.build(gpu(), &arch, 1).unwrap();
    let spec = InputSpec::Masked {
        patch: 4,
        ratio: 0.5,
    };
    let (q, s) = reconstruction::measure(
        gpu(),
        objective.as_mut(),
        spec,
        false,
        &data,
        Normalize::IMAGENET,
    )
    .unwrap()
    .unwrap();
    assert!(q.recon_psnr.is_finite() && q.recon_mse > 0.0);
    let (fill, inpaint) = (q.fill_mean_psnr.unwrap(), q.inpaint_psnr.unwrap());
    assert!(
        inpaint > fill,
        "diffusion {inpaint} dB should beat the mean {fill} dB on shapes"
    );
    assert_eq!(s.shape, [8, 3, 16, 16]);
    let picture = reconstruction::picture(&s, 8, 2);
    assert_eq!(
        (picture.width(), picture.height()),
        (2 * (3 * 17 + 1), 2 * (8 * 17 + 1))
    );
}

/// The labelled subset of the fine-tuning protocol: the same share of
/// every class, keyed by the seed.
#[test]
fn labelled_subsets_are_balanced_and_keyed() {
    use darkmatter::data::{Dataset, Split, SyntheticConfig, SyntheticDataset};
    use darkmatter::train::finetune::labelled_subset;
    use std::sync::Arc;
    let data: Arc<dyn Dataset> = Arc::new(
        SyntheticDataset::new(
            SyntheticConfig {
                size: 8,
                train_len: 600,
                test_len: 6,
                ..SyntheticConfig::default()
            },
            Split::Train,
        )
        .unwrap(),
    );
    let a = labelled_subset(&data, 0.1, 3).unwrap();
    assert_eq!(a.len(), 60);
    for class in 0..6 {
        assert_eq!(
            a.iter().filter(|&&i| data.label(i) == Some(class)).count(),
            10
        );
    }
    assert_eq!(a, labelled_subset(&data, 0.1, 3).unwrap());
    assert_ne!(a, labelled_subset(&data, 0.1, 4).unwrap());
    assert_eq!(labelled_subset(&data, 1.0, 0).unwrap().len(), 600);
}
