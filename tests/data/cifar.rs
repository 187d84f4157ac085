//! CIFAR-10 binary batches: layout conversion, directory layouts, corruptions.

use std::path::Path;

use darkmatter::data::{
    self, CIFAR10_RECORD_BYTES, CifarBatch, DataError, Split, read_cifar10_batch,
};

use crate::{TempDir, TestRng, assert_mentions, gzip};

/// `labels.len()` random records; returns the file bytes.
pub fn cifar_records(labels: &[u8], rng: &mut TestRng) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &label in labels {
        bytes.push(label);
        bytes.extend(rng.bytes(CIFAR10_RECORD_BYTES - 1));
    }
    bytes
}

/// Pixel (y, x, c) of record `r` as the planar file stores it.
fn planar(file: &[u8], r: usize, y: usize, x: usize, c: usize) -> u8 {
    file[r * CIFAR10_RECORD_BYTES + 1 + c * 1024 + y * 32 + x]
}

/// Writes five train batches of two records and a test batch of three.
fn write_batches(root: &Path, rng: &mut TestRng) -> (Vec<Vec<u8>>, Vec<u8>) {
    std::fs::create_dir_all(root).unwrap();
    let train: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            let bytes = cifar_records(&[i, 9 - i], rng);
            std::fs::write(root.join(format!("data_batch_{}.bin", i + 1)), &bytes).unwrap();
            bytes
        })
        .collect();
    let test = cifar_records(&[7, 0, 3], rng);
    std::fs::write(root.join("test_batch.bin"), &test).unwrap();
    (train, test)
}

#[test]
fn planar_records_become_interleaved_images() {
    let dir = TempDir::new("cifar-round-trip");
    let mut rng = TestRng::new(1);
    let (train, test) = write_batches(dir.path(), &mut rng);
    let names: String = (0..10).map(|i| format!("class{i}\n")).collect();
    dir.write("batches.meta.txt", format!("{names}\n\n").as_bytes());

    let ds = data::open(&dir.spec("cifar10"), Split::Train).unwrap();
    assert_eq!(
        (ds.len(), ds.height(), ds.width(), ds.channels()),
        (10, 32, 32, 3)
    );
    assert_eq!(ds.class_names().unwrap()[4], "class4");
    for (b, file) in train.iter().enumerate() {
        for r in 0..2 {
            let image = ds.image(2 * b + r);
            assert_eq!(
                ds.label(2 * b + r),
                Some(u32::from(file[r * CIFAR10_RECORD_BYTES]))
            );
            for (y, x, c) in [(0, 0, 0), (0, 1, 2), (5, 31, 1), (31, 31, 2), (17, 3, 0)] {
                assert_eq!(image[(y * 32 + x) * 3 + c], planar(file, r, y, x, c));
            }
        }
    }
    let test_ds = data::open(&dir.spec("cifar10"), Split::Test).unwrap();
    assert_eq!(test_ds.len(), 3);
    assert_eq!(test_ds.label(0), Some(7));
    assert_eq!(
        test_ds.image(2)[(32 + 5) * 3 + 1],
        planar(&test, 2, 1, 5, 1)
    );
}

#[test]
fn tarball_layout_gzip_and_default_names() {
    let dir = TempDir::new("cifar-nested");
    let mut rng = TestRng::new(2);
    let root = dir.path().join("cifar-10-batches-bin");
    let (_, test) = write_batches(&root, &mut rng);
    // A gzip-compressed batch is accepted too: detected by content.
    std::fs::write(root.join("test_batch.bin"), gzip(&test)).unwrap();
    let ds = data::open(&dir.spec("cifar10"), Split::Test).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.image(1)[0], planar(&test, 1, 0, 0, 0));
    // No batches.meta.txt: the standard names.
    assert_eq!(ds.class_names().unwrap()[0], "airplane");
}

#[test]
fn truncated_record_names_its_offset() {
    let mut rng = TestRng::new(3);
    let mut bytes = cifar_records(&[1, 2], &mut rng);
    bytes.extend(rng.bytes(100));
    let mut batch = CifarBatch::default();
    let error =
        read_cifar10_batch(&bytes[..], Path::new("/c/test_batch.bin"), &mut batch).unwrap_err();
    match error {
        DataError::Truncated {
            offset: 6146,
            expected: 3073,
            available: 100,
            ..
        } => {}
        ref other => panic!("{other:?}"),
    }
    assert_mentions(&error, "byte offset 6146");
    assert_mentions(&error, "/c/test_batch.bin");
}

#[test]
fn out_of_range_label_and_empty_file() {
    let mut rng = TestRng::new(4);
    let bytes = cifar_records(&[1, 10], &mut rng);
    let mut batch = CifarBatch::default();
    let error = read_cifar10_batch(&bytes[..], Path::new("b"), &mut batch).unwrap_err();
    assert!(matches!(
        error,
        DataError::BadLabel {
            offset: 3073,
            label: 10,
            ..
        }
    ));

    let error = read_cifar10_batch(&[][..], Path::new("/c/empty.bin"), &mut batch).unwrap_err();
    assert!(matches!(error, DataError::Invalid { .. }));
    assert_mentions(&error, "/c/empty.bin");
}

#[test]
fn missing_batches_and_bad_meta() {
    let dir = TempDir::new("cifar-missing");
    let error = data::open(&dir.spec("cifar10"), Split::Test).err().unwrap();
    assert!(matches!(error, DataError::Missing { .. }));
    assert_mentions(&error, "test_batch.bin");
    assert_mentions(&error, "cs.toronto.edu");

    let mut rng = TestRng::new(5);
    write_batches(dir.path(), &mut rng);
    std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
    let error = data::open(&dir.spec("cifar10"), Split::Train)
        .err()
        .unwrap();
    assert_mentions(&error, "data_batch_3.bin");

    dir.write("batches.meta.txt", b"cat\ndog\n");
    let error = data::open(&dir.spec("cifar10"), Split::Test).err().unwrap();
    assert!(matches!(error, DataError::Invalid { .. }));
    assert_mentions(&error, "batches.meta.txt");

    let absent = dir.path().join("nowhere");
    let error = data::open(&format!("cifar10:{}", absent.display()), Split::Test)
        .err()
        .unwrap();
    assert!(matches!(error, DataError::Missing { ref path, .. } if *path == absent));
}
