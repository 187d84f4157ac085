//! Image folders: layouts, decoding, resizing, and the ways a folder can be wrong.

use std::path::Path;

use darkmatter::data::{self, ColorMode, DataError, Dataset, FolderDataset, FolderOptions, Split};
use image::{Rgb, RgbImage};

use crate::{TempDir, assert_mentions};

fn solid(path: &Path, width: u32, height: u32, color: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_pixel(width, height, Rgb(color))
        .save(path)
        .unwrap();
}

const RGB8: FolderOptions = FolderOptions {
    height: 8,
    width: 8,
    color: ColorMode::Rgb,
};

#[test]
fn class_folders_give_sorted_labels_and_resized_images() {
    let dir = TempDir::new("folder-labelled");
    let root = dir.path();
    solid(&root.join("b_dogs/x.png"), 20, 10, [255, 0, 0]);
    solid(&root.join("a_cats/y.jpg"), 7, 7, [0, 0, 255]);
    solid(&root.join("a_cats/z.PNG"), 8, 8, [0, 255, 0]);
    dir.write("a_cats/notes.txt", b"not an image");
    solid(&root.join(".thumbnails/t.png"), 4, 4, [1, 2, 3]);

    let ds = FolderDataset::open(root, RGB8).unwrap();
    assert_eq!(
        (ds.len(), ds.height(), ds.width(), ds.channels()),
        (3, 8, 8, 3)
    );
    assert_eq!(ds.class_names().unwrap(), ["a_cats", "b_dogs"]);
    assert_eq!(ds.num_classes(), Some(2));
    let labels: Vec<_> = (0..3).map(|i| ds.label(i).unwrap()).collect();
    assert_eq!(labels, [0, 0, 1]);
    assert!(ds.path(1).unwrap().ends_with("a_cats/z.PNG"));

    // Resizing a solid colour keeps the colour (exactly for PNG, nearly for JPEG).
    assert!(ds.image(2).chunks(3).all(|p| p == [255, 0, 0]));
    assert!(ds.image(1).chunks(3).all(|p| p == [0, 255, 0]));
    assert!(
        ds.image(0)
            .chunks(3)
            .all(|p| { p[0] < 12 && p[1] < 12 && p[2] > 243 })
    );

    let grey = FolderDataset::open(
        root,
        FolderOptions {
            color: ColorMode::Grey,
            ..RGB8
        },
    )
    .unwrap();
    assert_eq!(grey.channels(), 1);
    let red = grey.image(2);
    assert_eq!(red.len(), 64);
    assert!(
        red.iter().all(|&v| v == red[0] && (30..100).contains(&v)),
        "{red:?}"
    );
}

#[test]
fn flat_folder_is_unlabelled_and_spec_uses_32x32_rgb() {
    let dir = TempDir::new("folder-flat");
    solid(&dir.path().join("2.png"), 5, 9, [10, 20, 30]);
    solid(&dir.path().join("1.png"), 40, 40, [200, 100, 0]);
    let ds = data::open(&dir.spec("folder"), Split::Train).unwrap();
    assert_eq!(
        (ds.len(), ds.height(), ds.width(), ds.channels()),
        (2, 32, 32, 3)
    );
    assert_eq!(ds.label(0), None);
    assert_eq!(ds.num_classes(), None);
    assert_eq!(&ds.image(0)[..3], [200, 100, 0]); // sorted: 1.png first
}

#[test]
fn train_and_test_sub_folders_select_the_split() {
    let dir = TempDir::new("folder-split");
    solid(&dir.path().join("train/a/1.png"), 8, 8, [1, 1, 1]);
    solid(&dir.path().join("train/a/2.png"), 8, 8, [2, 2, 2]);
    solid(&dir.path().join("test/a/3.png"), 8, 8, [3, 3, 3]);
    let train = data::open(&dir.spec("folder"), Split::Train).unwrap();
    let test = data::open(&dir.spec("folder"), Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (2, 1));
    assert_eq!(test.image(0)[0], 3);
}

#[test]
fn undecodable_images_name_the_file() {
    let dir = TempDir::new("folder-bad");
    solid(&dir.path().join("good.png"), 8, 8, [0, 0, 0]);
    let bad = dir.write("bad.png", b"\x89PNG\r\n\x1a\nthis is not a png body");
    let error = FolderDataset::open(dir.path(), RGB8).unwrap_err();
    assert!(matches!(error, DataError::Decode { ref path, .. } if *path == bad));
    assert_mentions(&error, &bad.display().to_string());

    // A real PNG cut in half.
    std::fs::remove_file(&bad).unwrap();
    let whole = std::fs::read(dir.path().join("good.png")).unwrap();
    let cut = dir.write("cut.png", &whole[..whole.len() / 2]);
    let error = FolderDataset::open(dir.path(), RGB8).unwrap_err();
    assert!(matches!(error, DataError::Decode { ref path, .. } if *path == cut));
}

#[test]
fn empty_missing_and_mixed_folders() {
    let dir = TempDir::new("folder-empty");
    let error = FolderDataset::open(dir.path(), RGB8).unwrap_err();
    assert!(matches!(error, DataError::EmptyFolder { .. }));
    assert_mentions(&error, &dir.path().display().to_string());

    dir.write("readme.txt", b"no images here");
    let error = FolderDataset::open(dir.path(), RGB8).unwrap_err();
    assert!(matches!(error, DataError::EmptyFolder { .. }));

    std::fs::create_dir(dir.path().join("empty_class")).unwrap();
    solid(&dir.path().join("full_class/1.png"), 8, 8, [0, 0, 0]);
    let error = FolderDataset::open(dir.path(), RGB8).unwrap_err();
    assert!(matches!(error, DataError::EmptyFolder { ref path } if path.ends_with("empty_class")));

    std::fs::remove_dir(dir.path().join("empty_class")).unwrap();
    solid(&dir.path().join("loose.png"), 8, 8, [0, 0, 0]);
    let error = FolderDataset::open(dir.path(), RGB8).unwrap_err();
    assert!(matches!(error, DataError::Invalid { .. }));
    assert_mentions(&error, "loose.png");

    let absent = dir.path().join("nope");
    let error = FolderDataset::open(&absent, RGB8).unwrap_err();
    assert!(matches!(error, DataError::Missing { ref path, .. } if *path == absent));

    let zero = FolderOptions { width: 0, ..RGB8 };
    let error = FolderDataset::open(dir.path(), zero).unwrap_err();
    assert!(matches!(error, DataError::Config(_)));
}
