//! f64 CPU references of the network layers, shared by the layer tests via
//! `#[path]`, and a central-difference gradient of any f64 function.
#![allow(dead_code)]

/// Convolution sizes: input [n, c, h, w], weight [o, c, k, k].
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv {
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    pub fn w_shape(&self) -> [usize; 4] {
        [self.o, self.c, self.k, self.k]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.oh(), self.ow()]
    }
}

pub fn conv2d(s: &Conv, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let (oh, ow) = (s.oh(), s.ow());
    let mut y = vec![0.0; s.n * s.o * oh * ow];
    for n in 0..s.n {
        for o in 0..s.o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| b[o]);
                    for c in 0..s.c {
                        for ky in 0..s.k {
                            for kx in 0..s.k {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let xi = ((n * s.c + c) * s.h + iy as usize) * s.w + ix as usize;
                                acc += x[xi] * w[((o * s.c + c) * s.k + ky) * s.k + kx];
                            }
                        }
                    }
                    y[((n * s.o + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// Batch norm in training mode over [n, c, l]: (y, batch mean, biased var).
pub fn batch_norm_train(
    x: &[f64],
    n: usize,
    c: usize,
    l: usize,
    affine: Option<(&[f64], &[f64])>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let count = (n * l) as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|i| (0..l).map(move |j| (i, j)))
            .map(|(i, j)| x[(i * c + ch) * l + j])
            .collect();
        mean[ch] = vals.iter().sum::<f64>() / count;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / count;
    }
    let y = batch_norm_apply(x, n, c, l, &mean, &var, affine);
    (y, mean, var)
}

/// Normalises with given statistics (eval mode uses the running ones).
pub fn batch_norm_apply(
    x: &[f64],
    n: usize,
    c: usize,
    l: usize,
    mean: &[f64],
    var: &[f64],
    affine: Option<(&[f64], &[f64])>,
) -> Vec<f64> {
    let mut y = vec![0.0; n * c * l];
    for i in 0..n {
        for ch in 0..c {
            for j in 0..l {
                let at = (i * c + ch) * l + j;
                let v = (x[at] - mean[ch]) / (var[ch] + 1e-5).sqrt();
                y[at] = match affine {
                    Some((g, b)) => v * g[ch] + b[ch],
                    None => v,
                };
            }
        }
    }
    y
}

pub fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.max(0.0)).collect()
}

/// The mean over the last `l` values of each of `rows` rows.
pub fn row_means(x: &[f64], l: usize) -> Vec<f64> {
    x.chunks(l)
        .map(|r| r.iter().sum::<f64>() / l as f64)
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// d f / d x[i] for every i by central differences (f64, so h can be small).
pub fn numeric_grad(x: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + h;
            let up = f(&xp);
            xp[i] = x[i] - h;
            let down = f(&xp);
            xp[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
