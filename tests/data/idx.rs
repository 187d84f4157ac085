//! IDX (MNIST / Fashion-MNIST): the real files, round trips, and every corruption.

use std::path::Path;

use darkmatter::data::{
    self, DataError, FASHION_MNIST_DIR, IdxDataset, Split, read_idx_images, read_idx_labels,
};

use crate::{TempDir, assert_mentions, gzip};

/// An idx3-ubyte file: magic, count, rows, cols (big-endian), then pixels.
pub fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [0x0000_0803u32, count, rows, cols] {
        bytes.extend(word.to_be_bytes());
    }
    bytes.extend(pixels);
    bytes
}

/// An idx1-ubyte file: magic, count, then labels.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(0x0000_0801u32.to_be_bytes());
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend(labels);
    bytes
}

/// Five 3x4 images whose pixels count up, and their labels.
fn sample() -> (Vec<u8>, Vec<u8>) {
    (
        (0..60).map(|i| (i * 4) as u8).collect(),
        vec![3, 1, 4, 1, 5],
    )
}

/// Writes a train and a test split (test = the same images reversed).
fn write_split_files(dir: &TempDir, compressed: bool) {
    let (pixels, labels) = sample();
    let reversed: Vec<u8> = pixels.chunks(12).rev().flatten().copied().collect();
    let reversed_labels: Vec<u8> = labels.iter().rev().copied().collect();
    let files = [
        ("train-images-idx3-ubyte", idx_images(5, 3, 4, &pixels)),
        ("train-labels-idx1-ubyte", idx_labels(&labels)),
        ("t10k-images-idx3-ubyte", idx_images(5, 3, 4, &reversed)),
        ("t10k-labels-idx1-ubyte", idx_labels(&reversed_labels)),
    ];
    for (name, bytes) in files {
        if compressed {
            dir.write(&format!("{name}.gz"), &gzip(&bytes));
        } else {
            dir.write(name, &bytes);
        }
    }
}

#[test]
fn real_fashion_mnist_parses() {
    if !Path::new(FASHION_MNIST_DIR).is_dir() {
        // Still check the message a user would see, then say why nothing more ran.
        let error = data::open("fashion-mnist", Split::Train).err().unwrap();
        assert!(matches!(error, DataError::Missing { .. }));
        assert_mentions(&error, "apt-get install dataset-fashion-mnist");
        eprintln!("skipped: {FASHION_MNIST_DIR} is absent");
        return;
    }
    for (split, len) in [(Split::Train, 60_000), (Split::Test, 10_000)] {
        let ds = data::open("fashion-mnist", split).unwrap();
        assert_eq!(ds.len(), len);
        assert_eq!((ds.height(), ds.width(), ds.channels()), (28, 28, 1));
        assert_eq!(ds.num_classes(), Some(10));
        // Both splits of Fashion-MNIST start with an ankle boot.
        assert_eq!(ds.label(0), Some(9));
        assert_eq!(ds.class_names().unwrap()[9], "Ankle boot");
        assert!((0..len).all(|i| ds.label(i).unwrap() < 10));
        assert!(ds.image(0).iter().any(|&p| p > 0));
        assert_eq!(ds.label(len), None);
    }
}

#[test]
fn raw_and_gzip_files_round_trip() {
    let (pixels, labels) = sample();
    for compressed in [false, true] {
        let dir = TempDir::new("idx-round-trip");
        write_split_files(&dir, compressed);
        for kind in ["mnist", "fashion-mnist"] {
            let ds = data::open(&dir.spec(kind), Split::Train).unwrap();
            assert_eq!(
                (ds.len(), ds.height(), ds.width(), ds.channels()),
                (5, 3, 4, 1)
            );
            for i in 0..5 {
                assert_eq!(ds.image(i), &pixels[i * 12..(i + 1) * 12]);
                assert_eq!(ds.label(i), Some(u32::from(labels[i])));
            }
            let test = data::open(&dir.spec(kind), Split::Test).unwrap();
            assert_eq!(test.image(0), &pixels[48..60]);
            assert_eq!(test.label(0), Some(5));
        }
    }
}

#[test]
fn gzip_is_detected_by_content_not_name() {
    let dir = TempDir::new("idx-sniff");
    let (pixels, labels) = sample();
    // Compressed bytes under the raw name, raw bytes under the .gz name.
    dir.write(
        "train-images-idx3-ubyte",
        &gzip(&idx_images(5, 3, 4, &pixels)),
    );
    dir.write("train-labels-idx1-ubyte.gz", &idx_labels(&labels));
    let ds = data::open(&dir.spec("mnist"), Split::Train).unwrap();
    assert_eq!(ds.image(4), &pixels[48..60]);
    assert_eq!(ds.label(4), Some(5));
}

/// Parses `bytes` as an image file, raw and gzip-compressed, and returns both errors.
fn image_errors(bytes: &[u8]) -> [DataError; 2] {
    let path = Path::new("/data/imgs.idx");
    [bytes.to_vec(), gzip(bytes)].map(|b| read_idx_images(&b[..], path).unwrap_err())
}

#[test]
fn wrong_magic_is_reported_with_both_numbers() {
    let (pixels, _) = sample();
    let mut bytes = idx_images(5, 3, 4, &pixels);
    bytes[3] = 0x01; // a label file's magic
    for error in image_errors(&bytes) {
        match &error {
            DataError::BadMagic {
                expected: 0x803,
                found: 0x801,
                path,
            } => assert_eq!(path, Path::new("/data/imgs.idx")),
            other => panic!("{other:?}"),
        }
        assert_mentions(&error, "/data/imgs.idx");
        assert_mentions(&error, "0x00000801");
    }
    // An image file passed where labels are expected.
    let images = idx_images(5, 3, 4, &pixels);
    let error = read_idx_labels(&images[..], Path::new("l")).unwrap_err();
    assert!(matches!(
        error,
        DataError::BadMagic {
            expected: 0x801,
            found: 0x803,
            ..
        }
    ));
}

#[test]
fn truncated_header_names_the_offset() {
    let (pixels, _) = sample();
    let bytes = idx_images(5, 3, 4, &pixels);
    // The magic (4 bytes) survives; the 12-byte dimension block is cut to 6.
    for error in image_errors(&bytes[..10]) {
        match error {
            DataError::Truncated {
                offset: 4,
                expected: 12,
                available: 6,
                ..
            } => {}
            ref other => panic!("{other:?}"),
        }
        assert_mentions(&error, "byte offset 4");
        assert_mentions(&error, "/data/imgs.idx");
    }
    for error in image_errors(&bytes[..2]) {
        assert!(matches!(
            error,
            DataError::Truncated {
                offset: 0,
                expected: 4,
                available: 2,
                ..
            }
        ));
    }
    let empty = read_idx_labels(&[][..], Path::new("l")).unwrap_err();
    assert!(matches!(empty, DataError::Truncated { available: 0, .. }));
}

#[test]
fn header_promising_more_than_exists() {
    let (pixels, _) = sample();
    let bytes = idx_images(100, 3, 4, &pixels);
    for error in image_errors(&bytes) {
        match error {
            DataError::HeaderTooLarge {
                promised: 1200,
                available: 60,
                ..
            } => {}
            ref other => panic!("{other:?}"),
        }
        assert_mentions(&error, "promises 1200 bytes");
        assert_mentions(&error, "/data/imgs.idx");
    }
}

#[test]
fn absurd_header_dimensions_are_refused_before_allocating() {
    // count * rows * cols overflows u64; a naive Vec::with_capacity would abort.
    for error in image_errors(&idx_images(u32::MAX, u32::MAX, u32::MAX, &[1, 2, 3])) {
        assert!(matches!(error, DataError::TooLarge { .. }), "{error:?}");
    }
    // Under the ceiling, the promise is not trusted either: only 3 bytes exist.
    for error in image_errors(&idx_images(1 << 20, 64, 64, &[1, 2, 3])) {
        assert!(matches!(
            error,
            DataError::HeaderTooLarge { available: 3, .. }
        ));
    }
    let zero = read_idx_images(&idx_images(5, 0, 4, &[])[..], Path::new("z")).unwrap_err();
    assert!(matches!(zero, DataError::Invalid { .. }));
    assert_mentions(&zero, "zero");
}

#[test]
fn trailing_bytes_are_rejected() {
    let (pixels, _) = sample();
    let mut bytes = idx_images(5, 3, 4, &pixels);
    bytes.push(0);
    for error in image_errors(&bytes) {
        assert!(matches!(error, DataError::Invalid { .. }));
        assert_mentions(&error, "byte offset 76");
    }
}

#[test]
fn corrupt_gzip_is_a_decode_error() {
    let (pixels, _) = sample();
    let mut bytes = gzip(&idx_images(5, 3, 4, &pixels));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes[middle + 1] ^= 0x55;
    let error = read_idx_images(&bytes[..], Path::new("/data/broken.gz")).unwrap_err();
    assert!(
        matches!(error, DataError::Decode { .. }),
        "corrupted deflate data gave {error:?}"
    );
    assert_mentions(&error, "/data/broken.gz");
}

#[test]
fn label_file_inconsistencies() {
    let (pixels, labels) = sample();
    let dir = TempDir::new("idx-labels");
    let images = dir.write("i", &idx_images(5, 3, 4, &pixels));
    let short = dir.write("short", &idx_labels(&labels[..4]));
    let names = || (0..10).map(|d| d.to_string()).collect();
    let error = IdxDataset::from_files("t", &images, &short, names()).unwrap_err();
    assert!(matches!(
        error,
        DataError::CountMismatch {
            image_count: 5,
            label_count: 4,
            ..
        }
    ));
    assert_mentions(&error, &short.display().to_string());

    let bad = dir.write("bad", &idx_labels(&[1, 2, 10, 3, 4]));
    let error = IdxDataset::from_files("t", &images, &bad, names()).unwrap_err();
    assert!(matches!(
        error,
        DataError::BadLabel {
            offset: 10,
            label: 10,
            ..
        }
    ));
    assert_mentions(&error, "byte offset 10");
}

#[test]
fn missing_files_explain_how_to_get_them() {
    let absent = std::env::temp_dir().join("darkmatter-data-no-such-dir");
    let error = data::open(&format!("fashion-mnist:{}", absent.display()), Split::Train)
        .err()
        .unwrap();
    assert!(matches!(error, DataError::Missing { ref path, .. } if *path == absent));
    assert_mentions(&error, "apt-get install dataset-fashion-mnist");
    assert_mentions(&error, &absent.display().to_string());

    // An existing directory without the files names the first one missing.
    let dir = TempDir::new("idx-missing");
    let error = data::open(&dir.spec("mnist"), Split::Test).err().unwrap();
    assert!(matches!(error, DataError::Missing { .. }));
    assert_mentions(&error, "t10k-images-idx3-ubyte.gz");
}

#[test]
fn unknown_specs_list_the_accepted_forms() {
    for spec in ["imagenet", "mnist", "cifar10", "folder:", "synthetic:3", ""] {
        let error = data::open(spec, Split::Train).err().unwrap();
        assert!(
            matches!(error, DataError::UnknownSpec { .. }),
            "{spec}: {error:?}"
        );
        assert_mentions(&error, data::ACCEPTED_SPECS);
        assert_mentions(&error, "fashion-mnist:DIR");
    }
}
