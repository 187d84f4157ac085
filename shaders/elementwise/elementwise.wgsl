// Elementwise ops with broadcasting, one element per invocation.
//
// Two entry points share the indexing code: `unary` computes out = f(x) and
// `binary` computes out = g(x, y). The host picks the op with the override
// constant OP, so each op is its own specialised pipeline with no runtime
// branch. Operands are read through strides over the (up to 4-D) output
// shape; a stride of 0 repeats an operand along that dimension, which is how
// a bias row [N] or a column [M, 1] is broadcast over [M, N], and how the
// unary affine op expands a reduced gradient back to its input's shape. With
// BROADCAST off (operands of the output's shape) the index maths is skipped.
//
// unary OP:  0 affine   alpha * x + beta  (scale, add-scalar, fill, expand)
//            1 relu     2 exp     3 log     4 sqrt     5 square
//            6 gelu     x * Phi(x), Phi the standard normal CDF (PyTorch's exact gelu)
//            7 sigmoid  1 / (1 + exp(-x))
// binary OP: 0 add      1 sub     2 mul     3 div
//            4 relu backward   x * (y > 0)    x = upstream gradient, y = relu input
//            5 sqrt backward   0.5 * x / y    y = sqrt output
//            6 gelu backward   x * (Phi(y) + y * phi(y))    y = gelu input
//            7 sigmoid backward  x * y * (1 - y)           y = sigmoid output

override OP: u32 = 0u;
override BROADCAST: bool = false;

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
    _pad: u32,
    shape: vec4<u32>,
    stride_x: vec4<u32>,
    stride_y: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// The grid may be split over x and y to stay under the per-dimension
// dispatch limit; the linear index is recovered from num_workgroups.
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// Coordinates of output element i over p.shape, outermost first.
fn coords(i: u32) -> vec4<u32> {
    let c3 = i % p.shape.w;
    let r3 = i / p.shape.w;
    let c2 = r3 % p.shape.z;
    let r2 = r3 / p.shape.z;
    return vec4<u32>(r2 / p.shape.y, r2 % p.shape.y, c2, c3);
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): WGSL has
// no erf builtin.
fn erf(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
             + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-a * a));
}

// The standard normal CDF and density.
fn normal_cdf(v: f32) -> f32 {
    return 0.5 * (1.0 + erf(v * 0.70710678118654752));
}

fn normal_pdf(v: f32) -> f32 {
    return 0.39894228040143268 * exp(-0.5 * v * v);
}

fn unary_op(v: f32) -> f32 {
    switch OP {
        case 1u: { return max(v, 0.0); }
        case 2u: { return exp(v); }
        case 3u: { return log(v); }
        case 4u: { return sqrt(v); }
        case 5u: { return v * v; }
        case 6u: { return v * normal_cdf(v); }
        case 7u: { return 1.0 / (1.0 + exp(-v)); }
        default: { return p.alpha * v + p.beta; }
    }
}

fn binary_op(u: f32, v: f32) -> f32 {
    switch OP {
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: { return select(0.0, u, v > 0.0); }
        case 5u: { return 0.5 * u / v; }
        case 6u: { return u * (normal_cdf(v) + v * normal_pdf(v)); }
        case 7u: { return u * v * (1.0 - v); }
        default: { return u + v; }
    }
}

@compute @workgroup_size(256)
fn unary(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    var ix = i;
    if BROADCAST {
        ix = dot(coords(i), p.stride_x);
    }
    out[i] = unary_op(x[ix]);
}

@compute @workgroup_size(256)
fn binary(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    var ix = i;
    var iy = i;
    if BROADCAST {
        let c = coords(i);
        ix = dot(c, p.stride_x);
        iy = dot(c, p.stride_y);
    }
    out[i] = binary_op(x[ix], y[iy]);
}
