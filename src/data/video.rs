//! Moving shapes: clips of objects that move and bounce, generated on
//! demand from `--seed`, with the ground truth of every frame kept for
//! evaluation (never shown to a model).
//!
//! A clip is `frames` grey `size x size` images. Each of its `objects`
//! objects is one of the synthetic generator's shapes ([`Shape`]) of
//! circumradius `radius` pixels, drawn white on black at a float position
//! with the same one-pixel box-filter anti-aliasing, and turned by a fixed
//! angle. It starts anywhere it fits, moves at a speed drawn uniformly
//! from `speed` pixels per frame in a uniform direction, and is reflected
//! at the walls (its circumscribed circle stays inside the frame, so a
//! bounce is visible as one). Where two objects overlap, the brighter
//! pixel wins (max compositing). Optional noise is drawn afresh for every
//! frame: a pattern fixed per clip is something a latent predictor learns
//! instead of the motion.
//!
//! Clip `i` of a split comes from a stream keyed by `(seed, split, i)`, so
//! clips are independent of the order they are asked for in.
//!
//! **Violations of expectation** ([`Violation`]): the same clip played
//! with something impossible happening to its first object from an onset
//! frame on: it teleports, vanishes, appears out of nowhere, turns into
//! another shape, or reverses without touching a wall. Every random draw
//! of the violation is made with the clip's own, so frames before the
//! onset are the possible twin's, byte for byte (an appearance blanks
//! them instead, and from its onset on is the twin).

use std::f32::consts::TAU;
use std::path::Path;
use std::sync::Arc;

use super::rng::CounterRng;
use super::synthetic::Placed;
use super::{DataError, Dataset, IdxDataset, Shape, Split};
use crate::named::named_enum;

/// Keeps moving-shapes streams apart from every other keyed stream.
const STREAM_TAG: u64 = 0x4d4f_5649_4e47_5348; // "MOVINGSH"
/// Keeps the per-frame noise apart from the clip's draws.
const NOISE_TAG: u64 = 0x4e4f_4953_4546_524d; // "NOISEFRM"

/// The size, length and number of clips of a moving-shapes data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MovingShapesConfig {
    /// Side of the square frames, in pixels.
    pub size: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Objects per clip.
    pub objects: usize,
    /// Circumradius of every object, in pixels.
    pub radius: f32,
    /// Speed range, in pixels per frame.
    pub speed: (f32, f32),
    /// Half-width of the uniform per-pixel noise, in units of full
    /// brightness (0: none).
    pub noise: f32,
    pub train_len: usize,
    pub test_len: usize,
    pub seed: u64,
}

impl Default for MovingShapesConfig {
    /// 4 000 train and 1 000 test clips of 10 frames of 32x32, one object
    /// of circumradius 5 (a square of side 7, a disc of diameter 10),
    /// speed 1..3 pixels per frame, no noise, seed 0.
    fn default() -> Self {
        MovingShapesConfig {
            size: 32,
            frames: 10,
            objects: 1,
            radius: 5.0,
            speed: (1.0, 3.0),
            noise: 0.0,
            train_len: 4000,
            test_len: 1000,
            seed: 0,
        }
    }
}

named_enum! {
    /// What goes wrong in an impossible clip, from its onset frame on.
    pub enum Violation("violation") {
        /// The object jumps to a distant place and moves on from there.
        Teleport = "teleport",
        /// The object disappears.
        Vanish = "vanish",
        /// The object is absent before the onset and appears in mid-frame.
        Appear = "appear",
        /// The object turns into another shape.
        Identity = "identity",
        /// The object turns back without touching a wall.
        Reverse = "reverse",
    }
}

/// The ground truth of one object in one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectTruth {
    /// The shape, as an index into [`Shape::ALL`].
    pub class: u32,
    /// Centre, in pixels from the top-left corner of the frame.
    pub x: f32,
    pub y: f32,
    /// The displacement that brought it here (the first frame: the one
    /// that takes it to the second), in pixels per frame.
    pub vx: f32,
    pub vy: f32,
    /// Whether it was reflected at a wall on its way into this frame.
    pub bounced: bool,
    /// Whether it is drawn in this frame.
    pub visible: bool,
}

/// One clip: its frames and their ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// `frames x size x size` bytes, frame after frame.
    pub pixels: Vec<u8>,
    /// Per frame, per object.
    pub truth: Vec<Vec<ObjectTruth>>,
}

/// An impossible clip and the frame from which it departs from its twin.
#[derive(Clone, Debug, PartialEq)]
pub struct Violated {
    pub clip: Clip,
    pub onset: usize,
}

/// Everything random about one object of one clip, drawn up front so
/// that a violation changes nothing else.
#[derive(Clone, Copy, Debug)]
struct Draw {
    class: u32,
    rotation: f32,
    start: [f32; 2],
    velocity: [f32; 2],
    /// Where a teleport lands, as fractions of the free range.
    jump: [f32; 2],
    /// What an identity change turns into.
    other_class: u32,
    /// The item drawn (and the one an identity change turns into), when
    /// the clips move items rather than shapes.
    item: usize,
    other_item: usize,
}

/// A split of a moving-objects data set; see the module documentation.
#[derive(Clone)]
pub struct MovingShapes {
    config: MovingShapesConfig,
    split: Split,
    /// Images to move instead of shapes (Moving MNIST's digits), from the
    /// same split of an image data set.
    items: Option<Arc<dyn Dataset>>,
}

impl std::fmt::Debug for MovingShapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovingShapes")
            .field("config", &self.config)
            .field("split", &self.split)
            .field("items", &self.items.as_ref().map(|d| d.name().to_string()))
            .finish()
    }
}

impl MovingShapes {
    /// The `split` half of the data set `config` describes, or an error
    /// naming what cannot be generated.
    pub fn new(config: MovingShapesConfig, split: Split) -> Result<Self, DataError> {
        let c = &config;
        let bad = |why: String| Err(DataError::Config(format!("moving shapes: {why}")));
        if !(c.radius.is_finite() && c.radius >= 1.0) {
            return bad(format!(
                "object radius {} must be at least 1 pixel",
                c.radius
            ));
        }
        // The object must be able to move: its circle and a frame's worth
        // of the fastest motion fit twice across the frame.
        let needed = (2.0 * (2.0 * c.radius + c.speed.1)).ceil() as usize;
        if c.size < needed || c.size > 1024 {
            return bad(format!(
                "frames of {0}x{0} are too small for objects of radius {1} moving up to {2} pixels per frame (need a side of at least {needed}, at most 1024)",
                c.size, c.radius, c.speed.1
            ));
        }
        if !(c.speed.0.is_finite()
            && c.speed.1.is_finite()
            && 0.0 <= c.speed.0
            && c.speed.0 <= c.speed.1)
        {
            return bad(format!(
                "speed range {}..{} must be finite, non-negative and increasing",
                c.speed.0, c.speed.1
            ));
        }
        if c.frames < 2 {
            return bad(format!("clips of {} frames show no motion", c.frames));
        }
        if !(1..=4).contains(&c.objects) {
            return bad(format!("{} objects per clip: choose 1 to 4", c.objects));
        }
        if !(c.noise.is_finite() && (0.0..=0.5).contains(&c.noise)) {
            return bad(format!("noise {} is outside 0..0.5", c.noise));
        }
        let len = match split {
            Split::Train => c.train_len,
            Split::Test => c.test_len,
        };
        if len == 0 {
            return bad(format!("the {split} split has no clips"));
        }
        Ok(MovingShapes {
            config,
            split,
            items: None,
        })
    }

    /// Clips of the grey images of `items` instead of shapes, each placed
    /// by its centre, with `config.radius` half its side (Moving MNIST:
    /// 28 x 28 digits, radius 14).
    pub fn with_items(
        config: MovingShapesConfig,
        split: Split,
        items: Arc<dyn Dataset>,
    ) -> Result<Self, DataError> {
        let mut m = MovingShapes::new(config, split)?;
        let (h, w) = (items.height(), items.width());
        if items.channels() != 1
            || h != w
            || (h as f32) > 2.0 * config.radius + 0.5
            || items.len() < 2
        {
            return Err(DataError::Config(format!(
                "moving {}: the items must be grey, square, two or more, and fit a radius of {} ({}x{}x{}, {} of them)",
                items.name(),
                config.radius,
                h,
                w,
                items.channels(),
                items.len()
            )));
        }
        m.items = Some(items);
        Ok(m)
    }

    pub fn config(&self) -> &MovingShapesConfig {
        &self.config
    }

    /// Clips in this split.
    pub fn len(&self) -> usize {
        match self.split {
            Split::Train => self.config.train_len,
            Split::Test => self.config.test_len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per frame.
    pub fn frame_len(&self) -> usize {
        self.config.size * self.config.size
    }

    fn split_key(&self) -> u64 {
        match self.split {
            Split::Train => 0,
            Split::Test => 1,
        }
    }

    fn draws(&self, index: usize) -> Vec<Draw> {
        let c = &self.config;
        let mut rng = CounterRng::keyed(&[STREAM_TAG, c.seed, self.split_key(), index as u64]);
        let (lo, hi) = (c.radius, c.size as f32 - c.radius);
        (0..c.objects)
            .map(|_| {
                let shapes = Shape::ALL.len() as u64;
                let mut class = rng.below(shapes) as u32;
                let mut other_class = ((class as u64 + 1 + rng.below(shapes - 1)) % shapes) as u32;
                let (mut item, mut other_item) = (0, 0);
                if let Some(items) = &self.items {
                    let n = items.len() as u64;
                    item = rng.below(n) as usize;
                    class = items.label(item).unwrap_or(0);
                    // Another item, of another class where labels allow.
                    other_item = (item + 1 + rng.below(n - 1) as usize) % items.len();
                    for _ in 0..16 {
                        if items.label(other_item) != Some(class) {
                            break;
                        }
                        other_item = (item + 1 + rng.below(n - 1) as usize) % items.len();
                    }
                    other_class = items.label(other_item).unwrap_or(0);
                }
                let rotation = rng.range(0.0, TAU);
                let start = [rng.range(lo, hi), rng.range(lo, hi)];
                let speed = rng.range(c.speed.0, c.speed.1);
                let angle = rng.range(0.0, TAU);
                Draw {
                    class,
                    rotation,
                    start,
                    velocity: [speed * angle.cos(), speed * angle.sin()],
                    jump: [rng.next_f32(), rng.next_f32()],
                    other_class,
                    item,
                    other_item,
                }
            })
            .collect()
    }

    /// The trajectory of one object, with `violation` from `onset` on.
    fn trajectory(&self, d: &Draw, violation: Option<(Violation, usize)>) -> Vec<ObjectTruth> {
        let c = &self.config;
        let (lo, hi) = (c.radius, c.size as f32 - c.radius);
        let [mut x, mut y] = d.start;
        let [mut vx, mut vy] = d.velocity;
        let mut out = Vec::with_capacity(c.frames);
        for t in 0..c.frames {
            let at_onset = violation.filter(|&(_, onset)| onset == t).map(|(v, _)| v);
            let after = violation.filter(|&(_, onset)| t >= onset).map(|(v, _)| v);
            if at_onset == Some(Violation::Reverse) {
                vx = -vx;
                vy = -vy;
            }
            let mut bounced = false;
            if t > 0 {
                (x, vx, bounced) = advance(x, vx, lo, hi, bounced);
                (y, vy, bounced) = advance(y, vy, lo, hi, bounced);
            }
            if at_onset == Some(Violation::Teleport) {
                [x, y] = self.landing(d, [x, y]);
            }
            let visible = match violation {
                Some((Violation::Vanish, onset)) => t < onset,
                Some((Violation::Appear, onset)) => t >= onset,
                _ => true,
            };
            let class = if after == Some(Violation::Identity) {
                d.other_class
            } else {
                d.class
            };
            out.push(ObjectTruth {
                class,
                x,
                y,
                vx,
                vy,
                bounced,
                visible,
            });
        }
        // The first frame's velocity is the motion out of it.
        if out.len() > 1 {
            let (vx, vy) = (out[1].vx, out[1].vy);
            if !out[1].bounced {
                out[0].vx = vx;
                out[0].vy = vy;
            }
        }
        out
    }

    /// Where a teleport from `from` lands: a point at least a third of
    /// the frame away, found along the draw's direction from the far
    /// corner of the free range.
    fn landing(&self, d: &Draw, from: [f32; 2]) -> [f32; 2] {
        let c = &self.config;
        let (lo, hi) = (c.radius, c.size as f32 - c.radius);
        let span = hi - lo;
        // Reflect the draw into the half of the free range farther from
        // `from` on each axis: the jump is at least span / 2 on the axis
        // where the object is nearer a wall.
        let far = |p: f32, u: f32| {
            let mid = (lo + hi) / 2.0;
            if p < mid {
                mid + u * (hi - mid)
            } else {
                lo + u * (mid - lo)
            }
        };
        let mut to = [far(from[0], d.jump[0]), far(from[1], d.jump[1])];
        // Both axes in the far halves: the distance is at least span / 2
        // minus what the draw gives back towards the middle; push the
        // landing out until it is a third of the frame away.
        let min = c.size as f32 / 3.0;
        for _ in 0..8 {
            if (to[0] - from[0]).hypot(to[1] - from[1]) >= min {
                break;
            }
            for k in 0..2 {
                to[k] = if to[k] > from[k] {
                    (to[k] + span / 8.0).min(hi)
                } else {
                    (to[k] - span / 8.0).max(lo)
                };
            }
        }
        to
    }

    /// Clip `index`.
    ///
    /// # Panics
    ///
    /// If `index >= len()`, like slice indexing.
    pub fn clip(&self, index: usize) -> Clip {
        self.render(index, None)
    }

    /// The frame from which `violation` is shown in clip `index`: the
    /// middle frame, except for a reversal, which moves to the nearest
    /// frame with no bounce of the first object just before, at or after
    /// it (so the turn cannot pass for a bounce).
    pub fn onset(&self, index: usize, violation: Violation) -> usize {
        let t = self.config.frames;
        let middle = t / 2;
        if violation != Violation::Reverse {
            return middle;
        }
        let d = self.draws(index)[0];
        let path = self.trajectory(&d, None);
        let quiet = |m: usize| (m - 1..=(m + 1).min(t - 1)).all(|k| !path[k].bounced);
        (0..t)
            .flat_map(|k| [middle + k, middle.wrapping_sub(k)])
            .find(|&m| (1..t).contains(&m) && quiet(m))
            .unwrap_or(middle)
    }

    /// Clip `index` with `violation` happening to its first object.
    pub fn violated(&self, index: usize, violation: Violation) -> Violated {
        let onset = self.onset(index, violation);
        Violated {
            clip: self.render(index, Some((violation, onset))),
            onset,
        }
    }

    fn render(&self, index: usize, violation: Option<(Violation, usize)>) -> Clip {
        assert!(index < self.len(), "clip {index} of {}", self.len());
        let c = &self.config;
        let draws = self.draws(index);
        let paths: Vec<Vec<ObjectTruth>> = draws
            .iter()
            .enumerate()
            .map(|(k, d)| self.trajectory(d, if k == 0 { violation } else { None }))
            .collect();
        let n = c.size;
        let mut pixels = vec![0u8; c.frames * n * n];
        let mut truth = Vec::with_capacity(c.frames);
        let item_side = self.items.as_ref().map_or(0, |d| d.width());
        // Each object's item image and the one it may turn into.
        let images: Vec<[Vec<u8>; 2]> = match &self.items {
            Some(items) => draws
                .iter()
                .map(|d| [items.image(d.item), items.image(d.other_item)])
                .collect(),
            None => Vec::new(),
        };
        for (t, frame) in pixels.chunks_exact_mut(n * n).enumerate() {
            let states: Vec<ObjectTruth> = paths.iter().map(|p| p[t]).collect();
            let placed: Vec<Stamp<'_>> = states
                .iter()
                .zip(&draws)
                .enumerate()
                .filter(|(_, (s, _))| s.visible)
                .map(|(k, (s, d))| match images.get(k) {
                    Some([first, other]) => {
                        let changed = k == 0
                            && matches!(violation, Some((Violation::Identity, onset)) if t >= onset);
                        let image = if changed { other } else { first };
                        Stamp::Item {
                            image,
                            side: item_side,
                            centre: [s.x, s.y],
                        }
                    }
                    None => Stamp::Shape(Placed::at(
                        Shape::ALL[s.class as usize],
                        [s.x, s.y],
                        c.radius,
                        d.rotation,
                    )),
                })
                .collect();
            let mut noise = (c.noise > 0.0).then(|| {
                CounterRng::keyed(&[NOISE_TAG, c.seed, self.split_key(), index as u64, t as u64])
            });
            for (p, byte) in frame.iter_mut().enumerate() {
                let (px, py) = ((p % n) as f32 + 0.5, (p / n) as f32 + 0.5);
                let mut v = placed
                    .iter()
                    .map(|o| o.coverage(px, py))
                    .fold(0.0f32, f32::max);
                if let Some(rng) = noise.as_mut() {
                    v += rng.range(-c.noise, c.noise);
                }
                *byte = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
            truth.push(states);
        }
        Clip { pixels, truth }
    }
}

/// What is drawn for one object: a shape, or an item image placed by its
/// centre and sampled bilinearly at the float position.
enum Stamp<'a> {
    Shape(Placed),
    Item {
        image: &'a [u8],
        side: usize,
        centre: [f32; 2],
    },
}

impl Stamp<'_> {
    /// The brightness (0..1) the object gives the pixel centred at (px, py).
    fn coverage(&self, px: f32, py: f32) -> f32 {
        match self {
            Stamp::Shape(p) => p.coverage(px, py),
            Stamp::Item {
                image,
                side,
                centre,
            } => {
                // Item pixel j's centre sits at centre - side/2 + j + 0.5.
                let half = *side as f32 / 2.0;
                let u = px - (centre[0] - half) - 0.5;
                let v = py - (centre[1] - half) - 0.5;
                let at = |x: i64, y: i64| -> f32 {
                    if x < 0 || y < 0 || x >= *side as i64 || y >= *side as i64 {
                        0.0
                    } else {
                        image[y as usize * side + x as usize] as f32 / 255.0
                    }
                };
                let (x0, y0) = (u.floor(), v.floor());
                let (fx, fy) = (u - x0, v - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
                let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
                top * (1.0 - fy) + bottom * fy
            }
        }
    }
}

/// The video data set kinds a spec may name.
const KINDS: [&str; 3] = ["moving-shapes", "moving-mnist", "moving-fashion-mnist"];

/// Whether a data spec names a video data set.
pub fn is_video(spec: &str) -> bool {
    let kind = spec.trim().split(':').next().unwrap_or("");
    KINDS.contains(&kind)
}

/// The train and test splits a video spec names, every clip keyed by
/// `seed`:
///
/// - `moving-shapes`: shapes, 32 x 32, 10 frames, one object;
/// - `moving-mnist:DIR` and `moving-fashion-mnist[:DIR]`: the 28 x 28
///   images of that IDX data set (train clips from its train split, test
///   clips from its test split), as Srivastava et al.'s Moving MNIST: 64 x
///   64, 20 frames, two objects;
///
/// each optionally followed by comma-separated `key=value` settings
/// (after the directory, if any): `size`, `frames`, `objects`, `radius`,
/// `noise`, `speed` (`lo-hi`), `train`, `test` (clips).
pub fn open_video(spec: &str, seed: u64) -> Result<[MovingShapes; 2], DataError> {
    let spec = spec.trim();
    let (kind, options) = spec.split_once(':').unwrap_or((spec, ""));
    if !KINDS.contains(&kind) {
        return Err(DataError::Config(format!(
            "'{spec}' is not a video data set (expected moving-shapes, moving-mnist:DIR or moving-fashion-mnist[:DIR], then optional ,key=value settings)"
        )));
    }
    let shapes = kind == "moving-shapes";
    let mut c = if shapes {
        MovingShapesConfig::default()
    } else {
        MovingShapesConfig {
            size: 64,
            frames: 20,
            objects: 2,
            radius: 14.0,
            train_len: 8000,
            ..MovingShapesConfig::default()
        }
    };
    c.seed = seed;
    let mut dir: Option<&str> = None;
    for (k, setting) in options.split(',').enumerate() {
        let bad = |why: &str| {
            DataError::Config(format!(
                "{kind} setting '{setting}': {why} (settings: size, frames, objects, radius, noise, speed=LO-HI, train, test)"
            ))
        };
        let Some((key, value)) = setting.split_once('=') else {
            if k == 0 && !shapes && !setting.is_empty() {
                dir = Some(setting);
                continue;
            }
            if setting.is_empty() && k == 0 {
                continue;
            }
            return Err(bad("expected key=value"));
        };
        let int = || {
            value
                .parse::<usize>()
                .map_err(|_| bad("not a whole number"))
        };
        let float = |v: &str| v.parse::<f32>().map_err(|_| bad("not a number"));
        match key {
            "size" => c.size = int()?,
            "frames" => c.frames = int()?,
            "objects" => c.objects = int()?,
            "train" => c.train_len = int()?,
            "test" => c.test_len = int()?,
            "radius" => c.radius = float(value)?,
            "noise" => c.noise = float(value)?,
            "speed" => {
                let (lo, hi) = value.split_once('-').ok_or_else(|| bad("expected LO-HI"))?;
                c.speed = (float(lo)?, float(hi)?);
            }
            _ => return Err(bad("unknown setting")),
        }
    }
    let split = |split: Split| -> Result<MovingShapes, DataError> {
        let items: Arc<dyn Dataset> = match kind {
            "moving-mnist" => {
                let dir = dir.ok_or_else(|| {
                    DataError::Config(
                        "moving-mnist needs the MNIST directory: moving-mnist:DIR".into(),
                    )
                })?;
                Arc::new(IdxDataset::mnist(Path::new(dir), split)?)
            }
            "moving-fashion-mnist" => {
                Arc::new(IdxDataset::fashion_mnist(dir.map(Path::new), split)?)
            }
            _ => return MovingShapes::new(c, split),
        };
        MovingShapes::with_items(c, split, items)
    };
    Ok([split(Split::Train)?, split(Split::Test)?])
}

/// One coordinate moved by `v` inside `[lo, hi]`, reflected at either end:
/// the new coordinate, the new velocity, and whether it bounced (or
/// `bounced` already).
fn advance(p: f32, v: f32, lo: f32, hi: f32, bounced: bool) -> (f32, f32, bool) {
    let q = p + v;
    if q < lo {
        (2.0 * lo - q, -v, true)
    } else if q > hi {
        (2.0 * hi - q, -v, true)
    } else {
        (q, v, bounced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(config: MovingShapesConfig) -> MovingShapes {
        MovingShapes::new(config, Split::Test).unwrap()
    }

    /// The brightness-weighted centre of a frame.
    fn centroid(frame: &[u8], n: usize) -> (f32, f32) {
        let (mut sx, mut sy, mut s) = (0.0, 0.0, 0.0);
        for (p, &b) in frame.iter().enumerate() {
            let w = b as f32;
            sx += w * ((p % n) as f32 + 0.5);
            sy += w * ((p / n) as f32 + 0.5);
            s += w;
        }
        (sx / s, sy / s)
    }

    /// Frame `t`'s brightness-weighted centre is within 0.3 px of the
    /// object's true centre (clip `i`, for the message).
    fn assert_drawn_at(clip: &Clip, t: usize, n: usize, (i, o): (usize, ObjectTruth)) {
        let (cx, cy) = centroid(&clip.pixels[t * n * n..(t + 1) * n * n], n);
        assert!(
            (cx - o.x).abs() < 0.3 && (cy - o.y).abs() < 0.3,
            "clip {i} frame {t}: drawn at ({cx}, {cy}), truth ({}, {})",
            o.x,
            o.y
        );
    }

    #[test]
    fn clips_replay_and_differ() {
        let m = shapes(MovingShapesConfig::default());
        assert_eq!(m.clip(7), m.clip(7));
        assert_ne!(m.clip(7).pixels, m.clip(8).pixels);
        let train = MovingShapes::new(MovingShapesConfig::default(), Split::Train).unwrap();
        assert_ne!(train.clip(7).pixels, m.clip(7).pixels);
    }

    /// Motion is continuous at constant speed, reflected at the walls, and
    /// what is drawn is where the truth says.
    #[test]
    fn objects_move_bounce_and_are_drawn_where_they_are() {
        let c = MovingShapesConfig::default();
        let m = shapes(c);
        let mut bounces = 0;
        for i in 0..200 {
            let clip = m.clip(i);
            let path: Vec<ObjectTruth> = clip.truth.iter().map(|f| f[0]).collect();
            let speed = path[0].vx.hypot(path[0].vy);
            assert!((c.speed.0..=c.speed.1).contains(&speed), "speed {speed}");
            for t in 0..c.frames {
                let o = path[t];
                assert!(o.x >= c.radius && o.x <= c.size as f32 - c.radius);
                assert!(o.y >= c.radius && o.y <= c.size as f32 - c.radius);
                assert!((o.vx.hypot(o.vy) - speed).abs() < 1e-4);
                if t > 0 {
                    let step = (o.x - path[t - 1].x).hypot(o.y - path[t - 1].y);
                    if o.bounced {
                        bounces += 1;
                        assert!(step <= speed + 1e-4);
                    } else {
                        assert!((step - speed).abs() < 1e-4, "clip {i} frame {t}");
                        assert!((o.x - path[t - 1].x - o.vx).abs() < 1e-4);
                    }
                }
                // Symmetric shapes put their centroid at the centre.
                if matches!(
                    Shape::ALL[o.class as usize],
                    Shape::Disc | Shape::Square | Shape::Ring | Shape::Cross
                ) {
                    assert_drawn_at(&clip, t, c.size, (i, o));
                }
            }
        }
        assert!(bounces > 20, "only {bounces} bounces in 200 clips");
    }

    #[test]
    fn violations_depart_from_their_twin_at_the_onset_only() {
        let c = MovingShapesConfig::default();
        let m = shapes(c);
        let fl = m.frame_len();
        for i in 0..50 {
            let possible = m.clip(i);
            for v in Violation::ALL {
                let Violated { clip, onset } = m.violated(i, v);
                assert!((1..c.frames).contains(&onset));
                let start = if v == Violation::Appear { 0 } else { onset };
                assert_eq!(
                    clip.pixels[..start * fl],
                    possible.pixels[..start * fl],
                    "{v} clip {i}: frames before the onset differ"
                );
                let frame = |k: usize| &clip.pixels[k * fl..(k + 1) * fl];
                let twin = |k: usize| &possible.pixels[k * fl..(k + 1) * fl];
                // An appearance shows in the blank frames before its onset.
                let shown = if v == Violation::Appear {
                    onset - 1
                } else {
                    onset
                };
                assert_ne!(frame(shown), twin(shown), "{v} clip {i}: nothing happens");
                let (o, p) = (clip.truth[onset][0], possible.truth[onset][0]);
                let prev = clip.truth[onset - 1][0];
                match v {
                    Violation::Teleport => {
                        let jump = (o.x - p.x).hypot(o.y - p.y);
                        assert!(jump >= c.size as f32 / 3.0 - 1e-3, "{i}: jump {jump}");
                    }
                    Violation::Vanish => {
                        assert!((onset..c.frames).all(|k| frame(k).iter().all(|&b| b == 0)));
                    }
                    Violation::Appear => {
                        assert!((0..onset).all(|k| frame(k).iter().all(|&b| b == 0)));
                        assert_eq!(frame(onset), twin(onset));
                    }
                    Violation::Identity => {
                        assert_ne!(o.class, p.class);
                        assert_eq!((o.x, o.y), (p.x, p.y));
                    }
                    Violation::Reverse => {
                        // Straight back along the way it came, from no wall.
                        if !possible.truth[onset][0].bounced && onset + 1 < c.frames {
                            assert!((o.x - (prev.x - possible.truth[onset][0].vx)).abs() < 1e-4);
                            assert!(!o.bounced);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn two_objects_are_max_composited() {
        let c = MovingShapesConfig {
            objects: 2,
            ..MovingShapesConfig::default()
        };
        let m = shapes(c);
        let one = shapes(MovingShapesConfig { objects: 1, ..c });
        let clip = m.clip(3);
        assert_eq!(clip.truth[0].len(), 2);
        // The first object's draws are the one-object clip's.
        assert_eq!(clip.truth[0][0], one.clip(3).truth[0][0]);
        let lone = one.clip(3);
        assert!(clip.pixels.iter().zip(&lone.pixels).all(|(a, b)| a >= b));
    }

    #[test]
    fn noise_changes_every_frame() {
        let c = MovingShapesConfig {
            noise: 0.1,
            ..MovingShapesConfig::default()
        };
        let m = shapes(c);
        let clip = m.clip(0);
        let fl = m.frame_len();
        // A corner far from the object in two frames: different noise.
        let corner = |t: usize| clip.pixels[t * fl..t * fl + 4].to_vec();
        assert!((1..c.frames).any(|t| corner(t) != corner(0)));
        assert_eq!(m.clip(0), clip);
    }

    #[test]
    fn specs_set_what_they_name() {
        let [train, test] = open_video(
            "moving-shapes:objects=2,frames=20,size=64,speed=2-4,train=7,test=3",
            5,
        )
        .unwrap();
        let c = *train.config();
        assert_eq!(
            (c.objects, c.frames, c.size, c.speed, c.seed),
            (2, 20, 64, (2.0, 4.0), 5)
        );
        assert_eq!((train.len(), test.len()), (7, 3));
        for bad in [
            "moving-shapes:size",
            "moving-shapes:colour=red",
            "moving-shapes:frames=x",
            "fashion-mnist",
        ] {
            assert!(open_video(bad, 0).is_err(), "{bad}");
        }
        assert!(is_video("moving-shapes:size=64") && !is_video("synthetic"));
    }

    /// Items (here the synthetic shapes' images, grey) move like shapes
    /// and are drawn where the truth says.
    #[test]
    fn items_move_and_are_drawn_at_their_centre() {
        use crate::data::{SyntheticConfig, SyntheticDataset};
        // A grey 16 x 16 item set: the synthetic images' first channel.
        struct Grey(SyntheticDataset);
        impl Dataset for Grey {
            fn name(&self) -> &str {
                "grey"
            }
            fn len(&self) -> usize {
                self.0.len()
            }
            fn height(&self) -> usize {
                16
            }
            fn width(&self) -> usize {
                16
            }
            fn channels(&self) -> usize {
                1
            }
            fn fill_image(&self, index: usize, out: &mut [u8]) {
                // A centred disc, symmetric, so its centroid is its centre.
                let _ = index;
                for (p, b) in out.iter_mut().enumerate() {
                    let (x, y) = ((p % 16) as f32 - 7.5, (p / 16) as f32 - 7.5);
                    *b = if x.hypot(y) < 5.0 { 255 } else { 0 };
                }
            }
            fn label(&self, index: usize) -> Option<u32> {
                Some((index % 2) as u32)
            }
            fn num_classes(&self) -> Option<usize> {
                Some(2)
            }
        }
        let synthetic = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
        let c = MovingShapesConfig {
            size: 48,
            radius: 8.0,
            ..MovingShapesConfig::default()
        };
        let m = MovingShapes::with_items(c, Split::Test, Arc::new(Grey(synthetic))).unwrap();
        for i in 0..20 {
            let clip = m.clip(i);
            for t in 0..c.frames {
                assert_drawn_at(&clip, t, c.size, (i, clip.truth[t][0]));
            }
            let v = m.violated(i, Violation::Identity);
            assert_ne!(v.clip.truth[v.onset][0].class, clip.truth[v.onset][0].class);
        }
        // An item larger than the radius allows is refused.
        let small = MovingShapesConfig { radius: 5.0, ..c };
        let synthetic = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
        assert!(MovingShapes::with_items(small, Split::Test, Arc::new(Grey(synthetic))).is_err());
        assert!(is_video("moving-mnist:/x") && is_video("moving-fashion-mnist"));
        assert!(
            open_video("moving-mnist", 0)
                .unwrap_err()
                .to_string()
                .contains("needs the MNIST directory")
        );
    }

    #[test]
    fn impossible_configurations_are_errors() {
        let d = MovingShapesConfig::default();
        let bad = [
            MovingShapesConfig { size: 12, ..d },
            MovingShapesConfig { frames: 1, ..d },
            MovingShapesConfig { objects: 0, ..d },
            MovingShapesConfig {
                radius: f32::NAN,
                ..d
            },
            MovingShapesConfig {
                speed: (3.0, 1.0),
                ..d
            },
            MovingShapesConfig { noise: 2.0, ..d },
            MovingShapesConfig { test_len: 0, ..d },
        ];
        for c in bad {
            let e = MovingShapes::new(c, Split::Test).unwrap_err();
            assert!(e.to_string().contains("moving shapes"), "{e}");
        }
        let e = MovingShapes::new(MovingShapesConfig { size: 12, ..d }, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too small"), "{e}");
    }
}
