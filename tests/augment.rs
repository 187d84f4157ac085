//! GPU augmentation against the CPU reference fed the same random
//! parameters, determinism of the keyed parameters, their statistics, and
//! the `darkmatter augment` command.

mod common;
use common::*;
use darkmatter::augment::{
    self, AugmentConfig, Crop, CropSampling, Jitter, Normalize, Preset, U8Batch, ViewConfig,
    ViewParams, cpu,
};
use darkmatter::{DeviceClass, Gpu};

/// Tolerance in `[0, 1]` pixel units: f32 rounding and fused multiply-adds
/// are all that separate the two implementations.
const TOL: f32 = 1e-4;
/// With noise: WGSL lets `cos` err by 2^-11 absolute, which Box-Muller
/// scales by up to ~5.5 and the noise deviation by 0.1.
const NOISE_TOL: f32 = 2e-3;

fn images(rng: &mut Rng, shape: [usize; 4]) -> Vec<u8> {
    (0..shape.iter().product())
        .map(|_| (rng.next_u64() >> 56) as u8)
        .collect()
}

/// Runs both implementations on a random batch and returns the largest
/// difference in `[0, 1]` pixel units (normalisation undone), and the mean
/// difference between the reference and the same pipeline with every
/// transform off (to show the transform under test did something).
fn max_error(shape: [usize; 4], config: &AugmentConfig, params: &[[ViewParams; 2]]) -> (f32, f32) {
    let bytes = images(&mut Rng::new(shape.iter().sum::<usize>() as u64), shape);
    let plain = AugmentConfig {
        views: [ViewConfig::IDENTITY; 2],
        ..*config
    };
    let plain_params = augment::sample_params(&plain, 0, 0, shape[0], (shape[1], shape[2]));
    let baseline = cpu::views(&bytes, shape, &plain, &plain_params).unwrap();
    let batch = U8Batch::upload(gpu(), &bytes, shape).unwrap();
    let gpu_views = augment::views_with(&batch, config, params).unwrap();
    let cpu_views = cpu::views(&bytes, shape, config, params).unwrap();
    let [b, h, w, c] = shape;
    let (oh, ow) = config.output_size(h, w);
    let std = if c == 1 {
        // Grey images use the luma of the RGB deviations.
        let s = config.normalize.std;
        0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]
    } else {
        config.normalize.std[0]
            .max(config.normalize.std[1])
            .max(config.normalize.std[2])
    };
    let (mut worst, mut change) = (0.0f32, 0.0f32);
    for ((g, want), base) in gpu_views.iter().zip(&cpu_views).zip(&baseline) {
        assert_eq!(g.shape(), &[b, c, oh, ow]);
        let got = g.to_vec().unwrap();
        for ((x, y), z) in got.iter().zip(want).zip(base) {
            assert!(x.is_finite(), "non-finite output");
            worst = worst.max((x - y).abs() * std);
            change += (y - z).abs() * std / (2 * want.len()) as f32;
        }
    }
    (worst, change)
}

fn one_view(v: ViewConfig) -> AugmentConfig {
    AugmentConfig {
        views: [v, v],
        output: None,
        normalize: Normalize::UNIT,
    }
}

/// Compares GPU and CPU on `config`; `changes` says whether the transforms
/// should alter the image at all (saturation and hue leave grey alone).
fn check(
    name: &str,
    shape: [usize; 4],
    config: &AugmentConfig,
    tol: f32,
    changes: bool,
) -> Vec<[ViewParams; 2]> {
    let params = augment::sample_params(config, 7, 3, shape[0], (shape[1], shape[2]));
    let (err, change) = max_error(shape, config, &params);
    assert!(
        err <= tol,
        "{name} {shape:?}: GPU and CPU differ by {err:e} (tolerance {tol:e})"
    );
    if changes {
        assert!(
            change > 0.005,
            "{name} {shape:?}: no visible change ({change})"
        );
    } else {
        assert_eq!(
            change, 0.0,
            "{name} {shape:?}: should leave the image alone"
        );
    }
    params
}

const ALWAYS: f32 = 1.0;

#[test]
fn crop_flip_rotation_sample_bilinearly_like_the_reference() {
    for sampling in [CropSampling::WholePixels, CropSampling::Continuous] {
        let v = ViewConfig {
            crop: Some(Crop {
                scale: (0.08, 1.0),
                ratio: (0.75, 4.0 / 3.0),
                sampling,
            }),
            flip: 0.5,
            rotation: 40.0,
            ..ViewConfig::IDENTITY
        };
        // Upscaling, downscaling and non-square sizes, none a multiple of 64.
        let cases = [
            ([5, 13, 11, 3], (20, 17)),
            ([4, 32, 32, 3], (9, 7)),
            ([3, 28, 28, 1], (28, 28)),
        ];
        for (shape, (oh, ow)) in cases {
            let config = one_view(v).with_output(oh, ow);
            let params = check("geometry", shape, &config, TOL, true);
            let flips = params.iter().flatten().filter(|p| p.flip).count();
            assert!(flips > 0 && flips < 2 * shape[0], "both flip states occur");
        }
    }
}

#[test]
fn continuous_crops_span_their_ranges_at_sub_pixel_positions() {
    // The light preset's crops on 28 x 28 images.
    let config = AugmentConfig::preset(Preset::Light);
    let crop = config.views[0].crop.unwrap();
    assert_eq!(crop.sampling, CropSampling::Continuous);
    let n = 20_000;
    let size = 28.0f32;
    let params = augment::sample_params(&config, 3, 0, n, (28, 28));
    let (mut unclamped, mut widths, mut lefts) = (vec![], vec![], vec![]);
    for p in params.iter().map(|p| &p[0]) {
        let [x, y, w, h] = p.crop;
        assert!(x >= 0.0 && y >= 0.0 && x + w <= size + 1e-4 && y + h <= size + 1e-4);
        let scale = w * h / (size * size);
        // Clamping a side happens only above area 0.75 and keeps the
        // area above 0.75.
        assert!((0.3 - 1e-5..=1.0 + 1e-6).contains(&scale), "scale {scale}");
        if w < size && h < size {
            // Neither side clamped: the drawn area and aspect ratio.
            let ratio = w / h;
            assert!(
                (0.75 - 1e-4..=4.0 / 3.0 + 1e-4).contains(&ratio),
                "aspect {ratio}"
            );
            unclamped.push(scale);
            // Position relative to the room the box leaves.
            lefts.push(x / (size - w));
        }
        widths.push(w);
    }
    // Unclamped boxes are most of them, with areas uniform up to where
    // clamping starts (area 0.75 at aspect 4/3).
    assert!(unclamped.len() > n / 2, "{} unclamped", unclamped.len());
    let low: Vec<f32> = unclamped.iter().copied().filter(|&s| s < 0.7).collect();
    assert_uniform("crop area", &low, 0.3 - 1e-5, 0.7);
    assert_uniform("crop position", &lefts, 0.0, 1.0);
    // Sub-pixel sizes: far more distinct widths than whole pixels allow.
    widths.sort_by(f32::total_cmp);
    widths.dedup();
    assert!(widths.len() > 1000, "{} distinct widths", widths.len());
    // The second view draws its own box.
    let differ = params.iter().filter(|p| p[0].crop != p[1].crop).count();
    assert_eq!(differ, n);
}

#[test]
fn known_answers_fix_the_conventions() {
    let unit = one_view(ViewConfig::IDENTITY);
    let run = |bytes: &[u8],
               shape: [usize; 4],
               config: &AugmentConfig,
               edit: &dyn Fn(&mut ViewParams)| {
        let mut params = augment::sample_params(config, 0, 0, 1, (shape[1], shape[2]));
        edit(&mut params[0][0]);
        let batch = U8Batch::upload(gpu(), bytes, shape).unwrap();
        let [view, _] = augment::views_with(&batch, config, &params).unwrap();
        view.to_vec().unwrap()
    };
    // A horizontal ramp 0, 30, ..., 210 halved to 4 pixels: output pixel j
    // covers source pixels 2j and 2j + 1 (centres aligned, not corners), so
    // it reads their mean, (2j + 0.5) * 30.
    let ramp: Vec<u8> = (0..8).map(|x| 30 * x as u8).collect();
    let got = run(&ramp, [1, 1, 8, 1], &unit.with_output(1, 4), &|_| {});
    let want: Vec<f64> = (0..4)
        .map(|j| (2.0 * j as f64 + 0.5) * 30.0 / 255.0)
        .collect();
    assert_close(&got, &want, 0.0, 1e-6, "bilinear halving");
    // A flip mirrors the row exactly.
    let flipped = ViewConfig {
        flip: ALWAYS,
        ..ViewConfig::IDENTITY
    };
    let got = run(&ramp, [1, 1, 8, 1], &one_view(flipped), &|_| {});
    let want: Vec<f64> = (0..8).rev().map(|x| 30.0 * x as f64 / 255.0).collect();
    assert_close(&got, &want, 0.0, 1e-6, "flip");
    // A third of a turn of hue takes red to green and green to blue.
    let pixels = [255, 0, 0, 0, 255, 0];
    let got = run(&pixels, [1, 1, 2, 3], &unit, &|p| p.jitter.hue = 1.0 / 3.0);
    let want = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]; // planes: R of both, G of both, B of both
    assert_close(&got, &want, 0.0, 1e-5, "hue");
    // Contrast 0 leaves the mean grey level everywhere; solarisation maps
    // 204 (0.8) to 0.2 and keeps 51 (0.2).
    let greys = [51, 204];
    let got = run(&greys, [1, 1, 2, 1], &unit, &|p| p.jitter.contrast = 0.0);
    assert_close(&got, &[0.5, 0.5], 0.0, 1e-6, "contrast 0");
    let got = run(&greys, [1, 1, 2, 1], &unit, &|p| p.solarize = true);
    assert_close(&got, &[0.2, 0.2], 0.0, 1e-6, "solarise");
    // Noise keeps pixels in [0, 1]: on black and white it only brightens
    // and darkens, and in between it moves both ways.
    let levels: Vec<u8> = (0..64).map(|i| [0, 128, 255][i % 3]).collect();
    let got = run(&levels, [1, 1, 64, 1], &unit, &|p| {
        p.noise_std = 0.2;
        p.noise_key = 7;
    });
    let at = |level: usize| got.iter().skip(level).step_by(3).copied();
    assert!(at(0).all(|y| y >= 0.0) && at(0).any(|y| y > 0.0), "{got:?}");
    assert!(at(2).all(|y| y <= 1.0) && at(2).any(|y| y < 1.0), "{got:?}");
    let grey: Vec<f32> = at(1).collect();
    assert!(grey.iter().any(|&y| y > 0.51) && grey.iter().any(|&y| y < 0.49));
}

#[test]
fn each_colour_jitter_matches_the_reference() {
    let jitters = [
        (
            "brightness",
            Jitter {
                brightness: 0.8,
                p: ALWAYS,
                ..Jitter::OFF
            },
        ),
        (
            "contrast",
            Jitter {
                contrast: 0.8,
                p: ALWAYS,
                ..Jitter::OFF
            },
        ),
        (
            "saturation",
            Jitter {
                saturation: 0.8,
                p: ALWAYS,
                ..Jitter::OFF
            },
        ),
        (
            "hue",
            Jitter {
                hue: 0.5,
                p: ALWAYS,
                ..Jitter::OFF
            },
        ),
        (
            "all, random order",
            Jitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.4,
                hue: 0.1,
                p: ALWAYS,
                random_order: true,
            },
        ),
        (
            "brightness then contrast, strong",
            Jitter {
                brightness: 0.8,
                contrast: 0.8,
                p: ALWAYS,
                random_order: false,
                ..Jitter::OFF
            },
        ),
    ];
    for (name, jitter) in jitters {
        let v = ViewConfig {
            jitter,
            ..ViewConfig::IDENTITY
        };
        check(name, [6, 15, 9, 3], &one_view(v), TOL, true);
        let colour_only = jitter.brightness == 0.0 && jitter.contrast == 0.0;
        check(name, [3, 15, 9, 1], &one_view(v), TOL, !colour_only);
    }
}

/// `random_order: false` (the `light` preset) always applies brightness,
/// contrast, saturation, hue in that order, with the same factors as the
/// random order would draw.
#[test]
fn jitter_order_is_fixed_where_asked() {
    let light = AugmentConfig::preset(Preset::Light);
    assert!(!light.views[0].jitter.random_order);
    let mut random = light;
    for v in &mut random.views {
        v.jitter.random_order = true;
    }
    let fixed = augment::sample_params(&light, 3, 5, 64, (28, 28));
    let shuffled = augment::sample_params(&random, 3, 5, 64, (28, 28));
    let mut jittered = 0;
    let mut reordered = 0;
    for (f, r) in fixed.iter().flatten().zip(shuffled.iter().flatten()) {
        assert_eq!(f.jitter.brightness, r.jitter.brightness);
        assert_eq!(f.jitter.contrast, r.jitter.contrast);
        if f.jitter.brightness != 1.0 {
            jittered += 1;
            assert_eq!(f.jitter.order, [0, 1, 2, 3]);
            reordered += (r.jitter.order != [0, 1, 2, 3]) as usize;
        }
    }
    // Every one of 128 views is jittered; about 23 of 24 permutations reorder.
    assert_eq!(jittered, 128);
    assert!(reordered > jittered / 2, "{reordered} of {jittered}");
}

#[test]
fn greyscale_solarise_and_normalise_match_the_reference() {
    let grey = ViewConfig {
        grayscale: ALWAYS,
        ..ViewConfig::IDENTITY
    };
    check("greyscale", [4, 10, 12, 3], &one_view(grey), TOL, true);
    let solarise = ViewConfig {
        solarize: ALWAYS,
        ..ViewConfig::IDENTITY
    };
    check("solarise", [4, 10, 12, 3], &one_view(solarise), TOL, true);
    let normalise = AugmentConfig {
        normalize: Normalize::IMAGENET,
        ..one_view(ViewConfig::IDENTITY)
    };
    check("normalise", [4, 10, 12, 3], &normalise, TOL, false);
    check("normalise grey", [4, 10, 12, 1], &normalise, TOL, false);
    // Without transforms a view is the image itself: (byte / 255 - mean) / std.
    let shape = [2, 3, 5, 3];
    let bytes = images(&mut Rng::new(3), shape);
    let batch = U8Batch::upload(gpu(), &bytes, shape).unwrap();
    let [view, _] = augment::views(&batch, &normalise, 0, 0).unwrap();
    let Normalize { mean, std } = Normalize::IMAGENET;
    let want: Vec<f64> = (0..2 * 3 * 15)
        .map(|i| {
            let (img, ch, px) = (i / 45, i / 15 % 3, i % 15);
            let byte = bytes[(img * 15 + px) * 3 + ch] as f64;
            (byte / 255.0 - mean[ch] as f64) / std[ch] as f64
        })
        .collect();
    assert_close(
        &view.to_vec().unwrap(),
        &want,
        1e-5,
        1e-5,
        "normalised identity view",
    );
}

#[test]
fn gaussian_blur_matches_the_reference() {
    // Sigmas in 224-pixel units: 5-14 on a 32-pixel view is 0.7-2 pixels,
    // radius 3 to 6.
    let v = ViewConfig {
        blur: ALWAYS,
        blur_sigma: (5.0, 14.0),
        ..ViewConfig::IDENTITY
    };
    for shape in [[4, 32, 32, 3], [3, 20, 24, 1]] {
        let params = check("blur", shape, &one_view(v), TOL, true);
        assert!(params.iter().flatten().all(|p| p.blur_radius >= 2));
    }
    // Blur after contrast: the two share the staging buffer.
    let both = ViewConfig {
        jitter: Jitter {
            contrast: 0.5,
            p: ALWAYS,
            ..Jitter::OFF
        },
        ..v
    };
    check(
        "contrast then blur",
        [4, 16, 16, 3],
        &one_view(both),
        TOL,
        true,
    );
}

#[test]
fn noise_matches_the_reference() {
    let v = ViewConfig {
        noise: ALWAYS,
        noise_std: 0.1,
        ..ViewConfig::IDENTITY
    };
    check("noise", [4, 12, 12, 3], &one_view(v), NOISE_TOL, true);
}

#[test]
fn every_preset_matches_the_reference() {
    for preset in Preset::ALL {
        let config = AugmentConfig::preset(preset);
        let changes = preset != Preset::None;
        check(preset.name(), [8, 32, 32, 3], &config, NOISE_TOL, changes);
        let small = config.with_output(20, 20);
        check(preset.name(), [8, 28, 28, 1], &small, NOISE_TOL, changes);
    }
}

#[test]
fn the_gpu_kernel_family_matches_the_reference_too() {
    // Adopting the device without its adapter info selects the GPU family
    // (64 invocations per view instead of CPU drivers' 16).
    let adopted = Gpu::from_wgpu(gpu().device().clone(), gpu().queue().clone(), None);
    assert_eq!(adopted.class(), DeviceClass::Gpu);
    let config = AugmentConfig::preset(Preset::Vicreg);
    for shape in [[8, 32, 32, 3], [4, 28, 28, 1]] {
        let bytes = images(&mut Rng::new(5), shape);
        let params = augment::sample_params(&config, 1, 2, shape[0], (shape[1], shape[2]));
        let batch = U8Batch::upload(&adopted, &bytes, shape).unwrap();
        let got = augment::views_with(&batch, &config, &params).unwrap();
        let want = cpu::views(&bytes, shape, &config, &params).unwrap();
        for (g, w) in got.iter().zip(&want) {
            let w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
            assert_close(&g.to_vec().unwrap(), &w, 0.0, 4e-4, "GPU family");
        }
    }
}

#[test]
fn the_same_key_replays_and_another_step_differs() {
    let config = AugmentConfig::preset(Preset::Vicreg);
    let shape = [6, 32, 32, 3];
    let bytes = images(&mut Rng::new(11), shape);
    let batch = U8Batch::upload(gpu(), &bytes, shape).unwrap();
    let run = |seed, step| -> Vec<Vec<f32>> {
        let views = augment::views(&batch, &config, seed, step).unwrap();
        views.iter().map(|t| t.to_vec().unwrap()).collect()
    };
    let first = run(1, 10);
    assert_eq!(first, run(1, 10), "same key, same bits");
    for other in [run(1, 11), run(2, 10)] {
        for (a, b) in first.iter().zip(&other) {
            let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
            assert!(
                same < a.len() / 10,
                "{same} of {} values unchanged",
                a.len()
            );
        }
    }
    // Parameters depend on the image and the view, not only the step.
    let p = augment::sample_params(&config, 1, 10, 2, (32, 32));
    assert_ne!(p[0][0], p[1][0]);
    assert_ne!(p[0][0], p[0][1]);
}

/// Asserts a frequency is within 5 standard deviations of `p` over `n` trials.
fn assert_rate(what: &str, hits: usize, n: usize, p: f64) {
    let rate = hits as f64 / n as f64;
    let sigma = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (rate - p).abs() <= 5.0 * sigma + 1e-12,
        "{what}: rate {rate:.4}, expected {p}"
    );
}

/// Asserts samples lie in `[lo, hi]` with the mean and variance of a uniform draw.
fn assert_uniform(what: &str, xs: &[f32], lo: f32, hi: f32) {
    let n = xs.len() as f64;
    assert!(
        xs.iter().all(|&x| (lo..=hi).contains(&x)),
        "{what}: outside [{lo}, {hi}]"
    );
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let (lo, hi) = (lo as f64, hi as f64);
    let want_var = (hi - lo).powi(2) / 12.0;
    assert!(
        (mean - (lo + hi) / 2.0).abs() <= 5.0 * (want_var / n).sqrt(),
        "{what}: mean {mean}"
    );
    assert!(
        (var / want_var - 1.0).abs() < 0.05,
        "{what}: variance {var}, want {want_var}"
    );
}

#[test]
fn vicreg_parameters_follow_their_ranges_and_probabilities() {
    let config = AugmentConfig::preset(Preset::Vicreg);
    let n = 20_000;
    let size = 224;
    let params = augment::sample_params(&config, 5, 0, n, (size, size));
    for view in 0..2 {
        let ps: Vec<&ViewParams> = params.iter().map(|p| &p[view]).collect();
        let count = |f: &dyn Fn(&ViewParams) -> bool| ps.iter().filter(|p| f(p)).count();
        assert_rate("flip", count(&|p| p.flip), n, 0.5);
        assert_rate("grey", count(&|p| p.grayscale), n, 0.2);
        assert_rate("blur", count(&|p| p.blur_radius > 0), n, [1.0, 0.1][view]);
        assert_rate("solarise", count(&|p| p.solarize), n, [0.0, 0.2][view]);
        assert_rate("noise", count(&|p| p.noise_std > 0.0), n, 0.0);
        assert_rate("jitter", count(&|p| p.jitter.brightness != 1.0), n, 0.8);
        for op in 0..4u8 {
            let first = count(&|p| p.jitter.brightness != 1.0 && p.jitter.order[0] == op);
            assert_rate(
                "jitter order",
                first,
                count(&|p| p.jitter.brightness != 1.0),
                0.25,
            );
        }
        let jittered: Vec<_> = ps.iter().filter(|p| p.jitter.brightness != 1.0).collect();
        let pick =
            |f: fn(&ViewParams) -> f32| -> Vec<f32> { jittered.iter().map(|p| f(p)).collect() };
        assert_uniform("brightness", &pick(|p| p.jitter.brightness), 0.6, 1.4);
        assert_uniform("contrast", &pick(|p| p.jitter.contrast), 0.6, 1.4);
        assert_uniform("saturation", &pick(|p| p.jitter.saturation), 0.8, 1.2);
        assert_uniform("hue", &pick(|p| p.jitter.hue), -0.1, 0.1);
        let blurred: Vec<f32> = ps
            .iter()
            .filter(|p| p.blur_radius > 0)
            .map(|p| p.blur_sigma)
            .collect();
        assert_uniform("blur sigma", &blurred, 0.1, 2.0);
        for p in ps.iter().filter(|p| p.blur_radius > 0) {
            assert_eq!(p.blur_radius, (3.0 * p.blur_sigma).ceil() as u32);
        }
        // Crops: inside the image, area and aspect within their ranges (up
        // to the rounding of the box to whole pixels), and spanning them.
        let area = (size * size) as f32;
        let mut scales = vec![];
        for p in &ps {
            let [x, y, w, h] = p.crop;
            assert!(x + w <= size as f32 && y + h <= size as f32 && w >= 1.0 && h >= 1.0);
            scales.push(w * h / area);
            let ratio = w / h;
            assert!((0.73..=1.36).contains(&ratio), "aspect {ratio}");
        }
        let (lo, hi) = scales
            .iter()
            .fold((1f32, 0f32), |(a, b), &s| (a.min(s), b.max(s)));
        assert!(
            (0.075..0.09).contains(&lo) && hi > 0.97 && hi <= 1.0,
            "crop scales {lo}..{hi}"
        );
    }
}

#[test]
fn rotation_and_noise_draws_are_distributed_as_configured() {
    let v = ViewConfig {
        rotation: 30.0,
        noise: 0.3,
        noise_std: 0.05,
        ..ViewConfig::IDENTITY
    };
    let n = 20_000;
    let params = augment::sample_params(&one_view(v), 9, 4, n, (32, 32));
    let angles: Vec<f32> = params.iter().map(|p| p[0].rotation).collect();
    assert_uniform("rotation", &angles, -30.0, 30.0);
    let noisy = params.iter().filter(|p| p[1].noise_std > 0.0).count();
    assert_rate("noise", noisy, n, 0.3);
    // The per-pixel noise is a standard normal: mean 0, variance 1, and
    // 4.55% of draws beyond two deviations.
    let m = 200_000u32;
    let zs: Vec<f64> = (0..m)
        .map(|i| augment::gaussian(0x1234_5678, i) as f64)
        .collect();
    let mean = zs.iter().sum::<f64>() / m as f64;
    let var = zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / m as f64;
    let tails = zs.iter().filter(|z| z.abs() > 2.0).count();
    assert!(mean.abs() < 5.0 / (m as f64).sqrt(), "mean {mean}");
    assert!((var - 1.0).abs() < 0.015, "variance {var}");
    assert_rate("two-sigma tails", tails, m as usize, 0.0455);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let config = AugmentConfig::preset(Preset::Vicreg);
    let shape = [2, 8, 8, 3];
    let bytes = vec![0u8; 2 * 8 * 8 * 3];
    assert!(
        U8Batch::upload(gpu(), &bytes[1..], shape).is_err(),
        "byte count"
    );
    assert!(
        U8Batch::upload(gpu(), &vec![0; 2 * 8 * 8 * 4], [2, 8, 8, 4])
            .and_then(|b| augment::views(&b, &config, 0, 0))
            .is_err(),
        "four channels"
    );
    let batch = U8Batch::upload(gpu(), &bytes, shape).unwrap();
    let params = augment::sample_params(&config, 0, 0, 1, (8, 8));
    assert!(
        augment::views_with(&batch, &config, &params).is_err(),
        "one pair for two images"
    );
    let mut bad = config;
    bad.views[1].flip = 1.5;
    assert!(
        augment::views(&batch, &bad, 0, 0).is_err(),
        "probability above 1"
    );
    assert!(
        augment::views(&batch, &config.with_output(0, 4), 0, 0).is_err(),
        "empty output"
    );
    let mut params = augment::sample_params(&config, 0, 0, 2, (8, 8));
    params[1][0].blur_radius = 8;
    assert!(
        augment::views_with(&batch, &config, &params).is_err(),
        "blur wider than the view"
    );
    let err = "nope".parse::<Preset>().unwrap_err().to_string();
    assert!(err.contains("position-preserving"), "{err}");
    for preset in Preset::ALL {
        assert_eq!(preset.name().parse::<Preset>().unwrap(), preset);
    }
}

#[test]
fn augment_command_writes_a_grid_and_fails_cleanly() {
    let bin = env!("CARGO_BIN_EXE_darkmatter");
    let out = std::env::temp_dir().join(format!("darkmatter-augment-{}.png", std::process::id()));
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .arg("augment")
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "--data",
        "synthetic",
        "--preset",
        "simclr",
        "--count",
        "3",
        "--zoom",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let grid = image::open(&out).unwrap();
    // 3 cells of 32 + 1 pixel gaps across, 3 rows down, doubled.
    assert_eq!(
        (grid.width(), grid.height()),
        (2 * (3 * 33 + 1), 2 * (3 * 33 + 1))
    );
    std::fs::remove_file(&out).unwrap();
    for args in [
        ["--data", "synthetic", "--preset", "nope"],
        ["--data", "bogus", "--preset", "none"],
    ] {
        let bad = run(&args);
        assert_eq!(bad.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&bad.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or("");
        assert!(line.contains(args[1]) || line.contains(args[3]), "{stderr}");
    }
}
