//! Kernel variants chosen by measuring them on the device: a choice is
//! kept for the process and cached per adapter and driver, a cached or
//! preset choice is used as it is, and measuring can be turned off or
//! overridden.

mod common;
use common::*;
use darkmatter::kernels::conv2d::{ConvGeometry, ConvPass, ConvVariant, conv2d};
use darkmatter::{Gpu, GpuOptions, Tensor};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("darkmatter-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn device(tune: bool, cache: Option<&std::path::Path>, conv: Option<&str>) -> Gpu {
    Gpu::with_options(GpuOptions {
        tune,
        cache_dir: cache.map(|p| p.to_path_buf()),
        conv: conv.map(str::to_string),
        ..GpuOptions::default()
    })
    .unwrap()
}

/// The convolution the tests run: 4.7 M multiply-adds, above the size
/// below which the heuristic decides without measuring.
const X: [usize; 4] = [4, 16, 16, 16];
const W: [usize; 4] = [32, 16, 3, 3];

/// The convolution (forward) and the tuning key it uses.
fn run_conv(gpu: &Gpu) -> (Vec<f32>, String) {
    let mut rng = Rng::new(3);
    let count = |s: [usize; 4]| s.iter().product::<usize>();
    let x = Tensor::from_slice(gpu, &rng.vec(count(X), -1.0, 1.0), &X).unwrap();
    let w = Tensor::from_slice(gpu, &rng.vec(count(W), -1.0, 1.0), &W).unwrap();
    let y = conv2d(&x, &w, None, 1, 1).unwrap().to_vec().unwrap();
    let key = gpu
        .tuning()
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| k.starts_with("conv2d/fwd/"))
        .expect("the forward's choice is recorded");
    (y, key)
}

fn chosen(gpu: &Gpu, key: &str) -> String {
    gpu.tuning()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap()
}

#[test]
fn a_measured_choice_is_kept_and_cached() {
    let dir = scratch("cache");
    let gpu = device(true, Some(&dir), None);
    let (_, key) = run_conv(&gpu);
    let variant = chosen(&gpu, &key);
    assert!(variant.parse::<ConvVariant>().is_ok(), "{variant}");
    // The cache file names the adapter and holds the choice.
    let (measure, file) = gpu.tuning_setup();
    assert!(measure);
    let text = std::fs::read_to_string(file.unwrap()).unwrap();
    assert!(
        text.contains(&key) && text.contains(&gpu.adapter_info().name),
        "{text}"
    );
    assert!(
        gpu.cached_tuning()
            .contains(&(key.clone(), variant.clone()))
    );
    // Asked again, the process keeps its choice.
    run_conv(&gpu);
    assert_eq!(chosen(&gpu, &key), variant);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A choice found in the cache is taken as it is, measured or not: here
/// `direct` for a key whose measurement picked something else (the
/// convolution is the same, to rounding).
#[test]
fn a_cached_choice_is_used_without_measuring() {
    let dir = scratch("cached");
    let first = device(true, Some(&dir), None);
    let (want, key) = run_conv(&first);
    let file = first.tuning_setup().1.unwrap().to_path_buf();
    let json = serde_json::json!({ "choices": { key.clone(): "direct" } });
    std::fs::write(&file, json.to_string()).unwrap();
    let second = device(true, Some(&dir), None);
    let (got, _) = run_conv(&second);
    assert_eq!(chosen(&second, &key), "direct");
    let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    assert_close(
        &got,
        &want,
        1e-5,
        1e-5,
        "direct against the measured variant",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resumed run presets its checkpoint's choices before anything runs.
#[test]
fn preset_choices_come_first() {
    let probe = device(false, None, None);
    let (_, key) = run_conv(&probe);
    let gpu = device(true, None, None);
    gpu.preset_tuning(&[(key.clone(), "im2col".to_string())]);
    run_conv(&gpu);
    assert_eq!(chosen(&gpu, &key), "im2col");
}

/// Without measuring, the heuristic decides; a forced variant overrides
/// everything; an unknown one is a typed error.
#[test]
fn tuning_off_and_forced_variants() {
    let gpu = device(false, None, None);
    let (_, key) = run_conv(&gpu);
    let g = ConvGeometry::new(&X, &W, 1, 1).unwrap();
    let heuristic = ConvVariant::default_for(&gpu, &g, ConvPass::Forward);
    assert_eq!(chosen(&gpu, &key), heuristic.name());
    assert_eq!(gpu.tuning_setup(), (false, None));

    let forced = device(true, None, Some("texture"));
    assert_eq!(
        ConvVariant::choose(&forced, &g, ConvPass::WeightGrad),
        ConvVariant::Texture
    );
    let e = Gpu::with_options(GpuOptions {
        conv: Some("fft".into()),
        ..GpuOptions::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("unknown convolution variant 'fft'"),
        "{e}"
    );
}

/// Shapes too small for the choice to matter take the heuristic's variant
/// without measuring, and are not cached.
#[test]
fn small_shapes_are_not_measured() {
    let dir = scratch("small");
    let gpu = device(true, Some(&dir), None);
    let x = Tensor::from_slice(&gpu, &[0.5; 2 * 3 * 5 * 5], &[2, 3, 5, 5]).unwrap();
    let w = Tensor::from_slice(&gpu, &[0.25; 4 * 3 * 9], &[4, 3, 3, 3]).unwrap();
    conv2d(&x, &w, None, 1, 1).unwrap();
    let g = ConvGeometry::new(x.shape(), w.shape(), 1, 1).unwrap();
    let heuristic = ConvVariant::default_for(&gpu, &g, ConvPass::Forward).name();
    assert!(
        gpu.tuning()
            .iter()
            .any(|(k, v)| k.starts_with("conv2d/fwd/") && v == heuristic)
    );
    assert!(gpu.cached_tuning().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cache directory that cannot be written leaves tuning in memory.
#[test]
fn an_unwritable_cache_is_not_an_error() {
    let gpu = device(
        true,
        Some(std::path::Path::new("/proc/darkmatter-cache")),
        None,
    );
    let (_, key) = run_conv(&gpu);
    assert!(chosen(&gpu, &key).parse::<ConvVariant>().is_ok());
    assert!(gpu.cached_tuning().is_empty());
}
