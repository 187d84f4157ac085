//! The synthetic shapes: determinism, ground truth, balance, rendering.

use std::f32::consts::TAU;

use darkmatter::data::{self, DataError, Dataset, Shape, Split, SyntheticConfig, SyntheticDataset};

fn small(seed: u64, split: Split) -> SyntheticDataset {
    let config = SyntheticConfig {
        size: 32,
        train_len: 300,
        test_len: 120,
        seed,
        ..SyntheticConfig::default()
    };
    SyntheticDataset::new(config, split).unwrap()
}

#[test]
fn same_index_same_bytes_whatever_the_access_order() {
    let forward = small(7, Split::Train);
    let backward = small(7, Split::Train);
    let ahead: Vec<Vec<u8>> = (0..60).map(|i| forward.image(i)).collect();
    // Interleave a far-away image between each, then walk backwards.
    for i in (0..60).rev() {
        backward.image(299 - i);
        assert_eq!(backward.image(i), ahead[i], "image {i}");
        assert_eq!(backward.attributes(i), forward.attributes(i));
    }
    // Different seeds and different splits give different images.
    assert_ne!(small(8, Split::Train).image(0), ahead[0]);
    assert_ne!(small(7, Split::Test).image(0), ahead[0]);
}

#[test]
fn attributes_stay_in_their_ranges() {
    for split in [Split::Train, Split::Test] {
        let ds = small(1, split);
        for i in 0..ds.len() {
            let a = ds.attributes(i).unwrap();
            assert_eq!(Some(a.class), ds.label(i));
            assert!((a.class as usize) < Shape::ALL.len());
            assert!((0.3..0.7).contains(&a.scale), "{a:?}");
            assert!((0.0..TAU).contains(&a.rotation), "{a:?}");
            // The circumscribed circle lies inside the image (up to rounding).
            for centre in [a.x, a.y] {
                let (low, high) = (centre - a.scale / 2.0, centre + a.scale / 2.0);
                assert!(low >= -1e-6 && high <= 1.0 + 1e-6, "{a:?}");
            }
        }
        assert_eq!(ds.attributes(ds.len()), None);
        assert_eq!(ds.label(ds.len()), None);
    }
}

#[test]
fn a_scale_range_is_honoured() {
    let config = SyntheticConfig {
        size: 16,
        train_len: 200,
        test_len: 10,
        seed: 2,
        scale: [0.55, 0.95],
    };
    let large = SyntheticDataset::new(config, Split::Train).unwrap();
    let default = SyntheticDataset::new(
        SyntheticConfig {
            scale: SyntheticConfig::default().scale,
            ..config
        },
        Split::Train,
    )
    .unwrap();
    let (mut lowest, mut highest) = (f32::INFINITY, 0.0f32);
    for i in 0..large.len() {
        let a = large.attributes(i).unwrap();
        assert!((0.55..0.95).contains(&a.scale), "{a:?}");
        for centre in [a.x, a.y] {
            let (low, high) = (centre - a.scale / 2.0, centre + a.scale / 2.0);
            assert!(low >= -1e-6 && high <= 1.0 + 1e-6, "{a:?}");
        }
        (lowest, highest) = (lowest.min(a.scale), highest.max(a.scale));
        // Larger shapes cover more pixels than the same draw at 0.3-0.7.
        assert!(a.scale > default.attributes(i).unwrap().scale);
    }
    // The draws spread over the range.
    assert!(lowest < 0.6 && highest > 0.9, "{lowest} {highest}");
    // A single scale is a valid range.
    let fixed = SyntheticConfig {
        scale: [0.8, 0.8],
        ..config
    };
    let fixed = SyntheticDataset::new(fixed, Split::Test).unwrap();
    assert_eq!(fixed.attributes(3).unwrap().scale, 0.8);
}

#[test]
fn default_splits_are_balanced() {
    let train = data::open("synthetic", Split::Train).unwrap();
    let test = data::open("synthetic", Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 2_000));
    assert_eq!(
        (train.height(), train.width(), train.channels()),
        (32, 32, 3)
    );
    assert_eq!(train.class_names().unwrap().len(), 6);
    let mut counts = [0usize; 6];
    for i in 0..train.len() {
        counts[train.label(i).unwrap() as usize] += 1;
    }
    // 10 000 / 6: every class has 1666 or 1667 images.
    assert!(counts.iter().all(|&c| c == 1666 || c == 1667), "{counts:?}");
}

#[test]
fn the_shape_sits_where_the_attributes_say() {
    let ds = small(3, Split::Train);
    let side = ds.width();
    for i in 0..ds.len() {
        let a = ds.attributes(i).unwrap();
        // The ring's centre is its hole; every other shape covers its centre.
        if Shape::ALL[a.class as usize] == Shape::Ring {
            continue;
        }
        let image = ds.image(i);
        let pixel = |x: usize, y: usize| &image[(y * side + x) * 3..(y * side + x) * 3 + 3];
        let (cx, cy) = ((a.x * side as f32) as usize, (a.y * side as f32) as usize);
        // No shape reaches a corner (its circumscribed circle cannot), and
        // shape and ground differ by at least 0.12 per channel before noise.
        let difference: i32 = pixel(cx, cy)
            .iter()
            .zip(pixel(0, 0))
            .map(|(&s, &g)| (i32::from(s) - i32::from(g)).abs())
            .sum();
        assert!(
            difference >= 25,
            "image {i}: {a:?}, difference {difference}"
        );
    }
}

#[test]
fn images_are_not_trivial() {
    let ds = small(4, Split::Train);
    for i in 0..12 {
        let image = ds.image(i);
        let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / image.len() as f64;
        let spread = image
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / image.len() as f64;
        assert!(spread.sqrt() > 10.0, "image {i} is nearly flat");
    }
}

#[test]
fn bad_configs_are_errors() {
    for config in [
        SyntheticConfig {
            size: 0,
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            test_len: 0,
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            scale: [0.0, 0.5],
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            scale: [0.6, 0.5],
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            scale: [0.5, 1.2],
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            scale: [f32::NAN, 0.5],
            ..SyntheticConfig::default()
        },
    ] {
        let error = SyntheticDataset::new(config, Split::Test).unwrap_err();
        assert!(matches!(error, DataError::Config(_)));
    }
}
