//! An embedded dataset of simple shapes, generated on demand (no files).
//!
//! Each image shows one shape — disc, square, triangle, cross, ring or star —
//! in a random colour, position, scale and rotation, over a textured
//! background: a low-contrast two-colour gradient, faint stripes and
//! per-pixel noise. The texture is there so a network cannot solve the task
//! by counting bright pixels; the contrast between shape and background is
//! kept high (dark shapes on light backgrounds or the reverse) so the shapes
//! stay distinguishable at 32x32.
//!
//! Image `i` of a split is drawn from a random stream keyed by
//! `(seed, split, i)`, so it is the same bytes whatever order images are
//! requested in, and nothing is stored: an image costs a few microseconds to
//! render. Classes cycle with the index (`class = i % 6`), which makes every
//! split exactly balanced up to one image per class.
//!
//! Rendering uses signed distances: every shape is a distance function in
//! its own frame, and a pixel's coverage is `clamp(0.5 - distance_in_pixels,
//! 0, 1)`, a one-pixel-wide box filter across the edge, which anti-aliases
//! without supersampling.

use std::f32::consts::{PI, TAU};

use super::rng::CounterRng;
use super::{Attributes, DataError, Dataset, Split};

/// Keeps synthetic streams apart from every other keyed stream.
const STREAM_TAG: u64 = 0x5359_4e54_4845_5449; // "SYNTHETI"

/// The default shape scale range: the diameter of the shape's circumscribed
/// circle as a fraction of the image width.
pub(crate) const SCALE_RANGE: [f32; 2] = [0.3, 0.7];

/// The shapes, one per class, in label order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A filled circle. Rotation has no visible effect.
    Disc,
    /// A filled square (4-fold symmetric).
    Square,
    /// A filled equilateral triangle (3-fold symmetric).
    Triangle,
    /// A plus sign with thick arms (4-fold symmetric).
    Cross,
    /// An annulus; the hole is 44% of the outer diameter. Rotation has no visible effect.
    Ring,
    /// A five-pointed star (5-fold symmetric).
    Star,
}

impl Shape {
    /// Every shape, indexed by class label.
    pub const ALL: [Shape; 6] = [
        Shape::Disc,
        Shape::Square,
        Shape::Triangle,
        Shape::Cross,
        Shape::Ring,
        Shape::Star,
    ];

    /// Lower-case name, used as the class name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Disc => "disc",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Star => "star",
        }
    }

    /// How many rotations in a full turn leave the shape unchanged; `None`
    /// for shapes unchanged by every rotation. A rotation attribute is only
    /// recoverable from pixels modulo `2π / order`.
    pub fn symmetry_order(self) -> Option<u32> {
        match self {
            Shape::Disc | Shape::Ring => None,
            Shape::Square | Shape::Cross => Some(4),
            Shape::Triangle => Some(3),
            Shape::Star => Some(5),
        }
    }

    /// The shape's outline, centred on the origin and fitting the unit circle.
    fn outline(self) -> Outline {
        match self {
            Shape::Disc => Outline::Disc,
            Shape::Ring => Outline::Ring,
            Shape::Square => Outline::Polygon(regular(4, 1.0, 1.0, PI / 4.0)),
            Shape::Triangle => Outline::Polygon(regular(3, 1.0, 1.0, -PI / 2.0)),
            // Ten vertices alternating between the tips and the notches.
            Shape::Star => Outline::Polygon(regular(10, 1.0, 0.45, -PI / 2.0)),
            Shape::Cross => Outline::Polygon(CROSS.to_vec()),
        }
    }
}

/// A shape's geometry in its own frame, in units of its circumradius.
/// Built once per image, so polygon vertices are not recomputed per pixel.
enum Outline {
    Disc,
    Ring,
    Polygon(Vec<[f32; 2]>),
}

impl Outline {
    /// Signed distance from `p` to the outline (negative inside).
    fn distance(&self, p: [f32; 2]) -> f32 {
        let r = p[0].hypot(p[1]);
        match self {
            Outline::Disc => r - 1.0,
            Outline::Ring => (r - 0.72).abs() - 0.28,
            Outline::Polygon(vertices) => polygon_distance(vertices, p),
        }
    }
}

/// A plus sign with arm half-length 0.95 and half-width 0.3: its corners lie
/// at radius ~0.996, just inside the unit circle.
const CROSS: [[f32; 2]; 12] = {
    const L: f32 = 0.95;
    const W: f32 = 0.3;
    [
        [W, -L],
        [W, -W],
        [L, -W],
        [L, W],
        [W, W],
        [W, L],
        [-W, L],
        [-W, W],
        [-L, W],
        [-L, -W],
        [-W, -W],
        [-W, -L],
    ]
};

/// `n` vertices around the origin, starting at angle `start`, alternating
/// between radius `even` and radius `odd` (equal radii give a regular polygon).
fn regular(n: usize, even: f32, odd: f32, start: f32) -> Vec<[f32; 2]> {
    (0..n)
        .map(|k| {
            let radius = if k % 2 == 0 { even } else { odd };
            let angle = start + TAU * k as f32 / n as f32;
            [radius * angle.cos(), radius * angle.sin()]
        })
        .collect()
}

/// Exact signed distance to a simple polygon (after Inigo Quilez's
/// `sdPolygon`): the unsigned distance is the nearest edge, the sign comes
/// from a crossing-number inside test done in the same loop.
fn polygon_distance(v: &[[f32; 2]], p: [f32; 2]) -> f32 {
    let sq = |a: [f32; 2]| a[0] * a[0] + a[1] * a[1];
    let mut d = sq([p[0] - v[0][0], p[1] - v[0][1]]);
    let mut sign = 1.0;
    let mut j = v.len() - 1;
    for i in 0..v.len() {
        let e = [v[j][0] - v[i][0], v[j][1] - v[i][1]];
        let w = [p[0] - v[i][0], p[1] - v[i][1]];
        let t = ((w[0] * e[0] + w[1] * e[1]) / sq(e)).clamp(0.0, 1.0);
        d = d.min(sq([w[0] - e[0] * t, w[1] - e[1] * t]));
        let c = [p[1] >= v[i][1], p[1] < v[j][1], e[0] * w[1] > e[1] * w[0]];
        if c.iter().all(|&b| b) || c.iter().all(|&b| !b) {
            sign = -sign;
        }
        j = i;
    }
    sign * d.sqrt()
}

/// Size, shape scale and seed of the synthetic dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Side of the square images, in pixels (8..=1024).
    pub size: usize,
    /// The least and the greatest diameter of a shape's circumscribed
    /// circle, as fractions of the image's side, in (0, 1]. At small sides
    /// the small shapes are hard to tell apart: a star 0.3 of 16 pixels
    /// across is 5 pixels wide.
    pub scale: [f32; 2],
    /// Number of training images.
    pub train_len: usize,
    /// Number of test images.
    pub test_len: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    /// 32x32 images, shapes 0.3-0.7 of the side, 10 000 train, 2 000
    /// test, seed 0.
    fn default() -> Self {
        SyntheticConfig {
            size: 32,
            scale: SCALE_RANGE,
            train_len: 10_000,
            test_len: 2_000,
            seed: 0,
        }
    }
}

/// Everything random about one image.
struct Scene {
    attributes: Attributes,
    shape_color: [f32; 3],
    background: [[f32; 3]; 2],
    gradient_dir: [f32; 2],
    stripe_amplitude: f32,
    stripe_frequency: f32,
    stripe_dir: [f32; 2],
    stripe_phase: f32,
}

/// The synthetic shapes dataset; see the module docs.
#[derive(Clone, Debug)]
pub struct SyntheticDataset {
    config: SyntheticConfig,
    split: Split,
    name: String,
    class_names: Vec<String>,
}

impl SyntheticDataset {
    /// The `split` half of the dataset that `config` describes.
    pub fn new(config: SyntheticConfig, split: Split) -> Result<Self, DataError> {
        if !(8..=1024).contains(&config.size) {
            return Err(DataError::Config(format!(
                "synthetic image size {} is outside 8..=1024",
                config.size
            )));
        }
        let [lo, hi] = config.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(DataError::Config(format!(
                "synthetic shape scale {lo}-{hi} is not a range within (0, 1]"
            )));
        }
        let len = match split {
            Split::Train => config.train_len,
            Split::Test => config.test_len,
        };
        if len == 0 {
            return Err(DataError::Config(format!(
                "synthetic {split} split has zero images"
            )));
        }
        Ok(SyntheticDataset {
            config,
            split,
            name: format!("synthetic ({split})"),
            class_names: Shape::ALL.iter().map(|s| s.name().to_string()).collect(),
        })
    }

    /// The random stream of image `index`: keyed, so independent of every
    /// other image.
    fn stream(&self, index: usize) -> CounterRng {
        let split = match self.split {
            Split::Train => 0,
            Split::Test => 1,
        };
        CounterRng::keyed(&[STREAM_TAG, self.config.seed, split, index as u64])
    }

    /// Draws the scene of image `index`; the returned stream continues into
    /// the per-pixel noise.
    fn scene(&self, index: usize) -> (Scene, CounterRng) {
        let mut rng = self.stream(index);
        let class = (index % Shape::ALL.len()) as u32;
        let [lo, hi] = self.config.scale;
        let scale = rng.range(lo, hi);
        // Keep the circumscribed circle inside the frame.
        let x = rng.range(scale / 2.0, 1.0 - scale / 2.0);
        let y = rng.range(scale / 2.0, 1.0 - scale / 2.0);
        let rotation = rng.range(0.0, TAU);
        // Dark shape on light ground or light on dark, with ranges chosen so
        // every channel stays at least 0.12 apart from the ground even where
        // the gradient and the stripes push the ground towards the shape.
        let dark_background = rng.coin();
        let (ground_range, shape_range) = if dark_background {
            ((0.05, 0.35), (0.65, 1.0))
        } else {
            ((0.65, 0.95), (0.0, 0.35))
        };
        let mut color = |(lo, hi): (f32, f32)| [0; 3].map(|_| rng.range(lo, hi));
        let base = color(ground_range);
        let shape_color = color(shape_range);
        let other = base.map(|c| c + rng.range(-0.12, 0.12));
        let angle = rng.range(0.0, TAU);
        let stripe_angle = rng.range(0.0, TAU);
        let scene = Scene {
            attributes: Attributes {
                class,
                x,
                y,
                scale,
                rotation,
            },
            shape_color,
            background: [base, other],
            gradient_dir: [angle.cos(), angle.sin()],
            stripe_amplitude: rng.range(0.0, 0.06),
            stripe_frequency: rng.range(2.0, 6.0),
            stripe_dir: [stripe_angle.cos(), stripe_angle.sin()],
            stripe_phase: rng.range(0.0, TAU),
        };
        (scene, rng)
    }
}

/// A shape placed in an image of a given side: maps pixels to coverage.
pub(crate) struct Placed {
    outline: Outline,
    /// Centre, in pixels.
    centre: [f32; 2],
    /// Circumradius, in pixels.
    radius: f32,
    sin: f32,
    cos: f32,
}

impl Placed {
    fn new(shape: Shape, a: &Attributes, size: f32) -> Self {
        Placed::at(
            shape,
            [a.x * size, a.y * size],
            a.scale * size / 2.0,
            a.rotation,
        )
    }

    /// `shape` centred at `centre` (pixels), of circumradius `radius`
    /// (pixels), turned by `rotation` radians.
    pub(crate) fn at(shape: Shape, centre: [f32; 2], radius: f32, rotation: f32) -> Self {
        let (sin, cos) = rotation.sin_cos();
        Placed {
            outline: shape.outline(),
            centre,
            radius,
            sin,
            cos,
        }
    }

    /// Fraction of the pixel centred at (px, py) that the shape covers.
    pub(crate) fn coverage(&self, px: f32, py: f32) -> f32 {
        let (dx, dy) = (px - self.centre[0], py - self.centre[1]);
        // Rotate the pixel into the shape's frame (the inverse rotation).
        let local = [
            (self.cos * dx + self.sin * dy) / self.radius,
            (-self.sin * dx + self.cos * dy) / self.radius,
        ];
        let distance_px = self.outline.distance(local) * self.radius;
        (0.5 - distance_px).clamp(0.0, 1.0)
    }
}

impl Dataset for SyntheticDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        match self.split {
            Split::Train => self.config.train_len,
            Split::Test => self.config.test_len,
        }
    }
    fn height(&self) -> usize {
        self.config.size
    }
    fn width(&self) -> usize {
        self.config.size
    }
    fn channels(&self) -> usize {
        3
    }

    fn fill_image(&self, index: usize, out: &mut [u8]) {
        assert!(index < self.len(), "image {index} of {}", self.len());
        assert_eq!(out.len(), self.image_len(), "output buffer length");
        let (scene, mut rng) = self.scene(index);
        let n = self.config.size;
        let size = n as f32;
        let a = &scene.attributes;
        let placed = Placed::new(Shape::ALL[a.class as usize], a, size);
        for (pixel, rgb) in out.chunks_exact_mut(3).enumerate() {
            let (px, py) = ((pixel % n) as f32 + 0.5, (pixel / n) as f32 + 0.5);
            let (u, v) = (px / size - 0.5, py / size - 0.5);
            // Gradient parameter in [0, 1] across the image along its direction.
            let t = 0.5 + (u * scene.gradient_dir[0] + v * scene.gradient_dir[1]) / 1.5;
            let along = u * scene.stripe_dir[0] + v * scene.stripe_dir[1];
            let stripe = scene.stripe_amplitude
                * (TAU * scene.stripe_frequency * along + scene.stripe_phase).sin();
            let alpha = placed.coverage(px, py);
            for (c, byte) in rgb.iter_mut().enumerate() {
                let [b0, b1] = [scene.background[0][c], scene.background[1][c]];
                let ground = b0 + (b1 - b0) * t + stripe;
                let noise = rng.range(-0.04, 0.04);
                let value = ground + (scene.shape_color[c] - ground) * alpha + noise;
                *byte = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }

    fn label(&self, index: usize) -> Option<u32> {
        (index < self.len()).then(|| (index % Shape::ALL.len()) as u32)
    }
    fn num_classes(&self) -> Option<usize> {
        Some(Shape::ALL.len())
    }
    fn class_names(&self) -> Option<&[String]> {
        Some(&self.class_names)
    }
    fn attributes(&self, index: usize) -> Option<Attributes> {
        (index < self.len()).then(|| self.scene(index).0.attributes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rendered area (in circumradius units squared) against the closed-form
    /// area of each shape: checks outline, sign convention and anti-aliasing.
    #[test]
    fn rendered_area_matches_geometry() {
        let star = 5.0 * 1.0 * 0.45 * (PI / 5.0).sin(); // n R r sin(pi/n)
        let expected = [
            (Shape::Disc, PI),
            (Shape::Square, 2.0),
            (Shape::Triangle, 3.0 * 3f32.sqrt() / 4.0),
            (Shape::Cross, 8.0 * 0.95 * 0.3 - 4.0 * 0.3 * 0.3),
            (Shape::Ring, PI * (1.0 - 0.44 * 0.44)),
            (Shape::Star, star),
        ];
        let size = 256.0;
        for (shape, area) in expected {
            let a = Attributes {
                class: 0,
                x: 0.5,
                y: 0.5,
                scale: 0.5,
                rotation: 0.3,
            };
            let placed = Placed::new(shape, &a, size);
            let mut covered = 0.0;
            for py in 0..256 {
                for px in 0..256 {
                    covered += placed.coverage(px as f32 + 0.5, py as f32 + 0.5);
                }
            }
            let radius: f32 = 64.0;
            let measured = covered / (radius * radius);
            assert!(
                (measured - area).abs() < 0.02 * area,
                "{shape:?}: area {measured} vs {area}"
            );
        }
    }

    #[test]
    fn shapes_fit_the_unit_circle() {
        for shape in Shape::ALL {
            let outline = shape.outline();
            for k in 0..360 {
                let angle = (k as f32).to_radians();
                let p = [1.001 * angle.cos(), 1.001 * angle.sin()];
                assert!(
                    outline.distance(p) > 0.0,
                    "{shape:?} pokes out at {k} degrees"
                );
            }
        }
    }
}
