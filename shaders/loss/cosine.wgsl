// Row-wise cosine similarity of two [rows, dim] matrices p and z, the loss
// of BYOL (2 - 2 cos) and SimSiam (-cos), and its gradient.
//
// `forward`   one invocation per row: the dot product and both squared
//             norms in one pass over the row, then cos = p.z / (|p| |z|)
//             with each norm clamped below at `eps` (PyTorch's
//             cosine_similarity). It writes cos[r] and the inverse norms
//             (kept for the backward); the host averages cos over rows with
//             the reduce kernel.
// `backward`  one invocation per element, for one operand at a time
//             (`wrt` 0: p, 1: z): with u = p / |p| and v = z / |z|,
//             d mean(cos) / dp = (v - cos u) / (|p| rows), times g. The
//             other operand's gradient is the same with p and z swapped.
// Rows are short (a projection's width), so a loop per row needs no
// workgroup reduction and no barrier.

struct Params {
    rows: u32,
    dim: u32,
    wrt: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> cosine: array<f32>;
@group(0) @binding(4) var<storage, read_write> inv_norms: array<vec2<f32>>;

@compute @workgroup_size(64)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if r >= prm.rows {
        return;
    }
    let base = r * prm.dim;
    var dot = 0.0;
    var pp = 0.0;
    var zz = 0.0;
    for (var j = 0u; j < prm.dim; j++) {
        let a = p[base + j];
        let b = z[base + j];
        dot += a * b;
        pp += a * a;
        zz += b * b;
    }
    let inv = vec2<f32>(1.0 / max(sqrt(pp), prm.eps), 1.0 / max(sqrt(zz), prm.eps));
    inv_norms[r] = inv;
    cosine[r] = dot * inv.x * inv.y;
}

@group(0) @binding(1) var<storage, read> bp: array<f32>;
@group(0) @binding(2) var<storage, read> bz: array<f32>;
@group(0) @binding(3) var<storage, read> bcosine: array<f32>;
@group(0) @binding(4) var<storage, read> binv: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if i >= prm.rows * prm.dim {
        return;
    }
    let r = i / prm.dim;
    let inv = binv[r];
    let c = bcosine[r];
    // The operand differentiated (self) and the other one.
    let own = select(bp[i], bz[i], prm.wrt == 1u);
    let other = select(bz[i], bp[i], prm.wrt == 1u);
    let inv_own = select(inv.x, inv.y, prm.wrt == 1u);
    let inv_other = select(inv.y, inv.x, prm.wrt == 1u);
    let scale = g[0] / f32(prm.rows);
    grad[i] = scale * inv_own * (other * inv_other - c * own * inv_own);
}
