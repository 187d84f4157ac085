// matmul, variant 4 of 4: register-blocked, operands read through textures
// (the CPU variant).
//
// Changes from blocked: op(A) and op(B) are first packed into rgba32float
// textures by pack.wgsl (zero-padded, transposes applied), and each
// invocation computes a 16 x 16 block of C from them.
//
// Why textures: a CPU driver such as llvmpipe runs 8 invocations as the lanes
// of one SIMD loop. A storage-buffer load whose address differs per lane
// becomes a loop over the lanes with a bounds test and a branch per lane and
// per component; a texel fetch is compiled to straight-line code: 8 vector
// loads of 16 bytes and a transpose. Per 4-wide step along k the block needs
// 16 fetches of A and 16 of B for 256 vec4 FMAs, and measured 3-4x faster
// than `blocked` on llvmpipe at 1024 (README.md).
//
// Consecutive invocations (the SIMD lanes) take consecutive 16-column blocks
// and the row block comes from workgroup_id.y, so every lane fetches the same
// A texels and consecutive B texels.
//
// The textures are padded to whole blocks, so no fetch is out of range and
// the module is compiled without runtime bounds checks; stores are guarded.

struct Params {
    m: u32,
    n: u32,
    // Texels per row of the A texture's pages (K / 4 rounded up).
    k4: u32,
    // Texels per row of the B texture's pages (N / 4, rounded up to 4).
    n4: u32,
    // log2 of the page heights (see pack.wgsl).
    shift_a: u32,
    shift_b: u32,
    // Element offset of C (a matrix of a batch).
    base_c: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var ta: texture_2d<f32>;
@group(0) @binding(2) var tb: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// One row of the block: 16 outputs.
struct Row {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
}

// op(B)[k .. k + 4, the block's 16 columns]: bt holds row k + t.
struct Panel {
    b0: Row,
    b1: Row,
    b2: Row,
    b3: Row,
}

fn b_row(x: u32, y: u32) -> Row {
    return Row(
        textureLoad(tb, vec2<u32>(x, y), 0),
        textureLoad(tb, vec2<u32>(x + 1u, y), 0),
        textureLoad(tb, vec2<u32>(x + 2u, y), 0),
        textureLoad(tb, vec2<u32>(x + 3u, y), 0),
    );
}

// acc += a[k .. k + 4] · panel, for one row of the block.
fn update(acc: Row, a: vec4<f32>, q: Panel) -> Row {
    let ax = vec4<f32>(a.x);
    let ay = vec4<f32>(a.y);
    let az = vec4<f32>(a.z);
    let aw = vec4<f32>(a.w);
    return Row(
        fma(aw, q.b3.c0, fma(az, q.b2.c0, fma(ay, q.b1.c0, fma(ax, q.b0.c0, acc.c0)))),
        fma(aw, q.b3.c1, fma(az, q.b2.c1, fma(ay, q.b1.c1, fma(ax, q.b0.c1, acc.c1)))),
        fma(aw, q.b3.c2, fma(az, q.b2.c2, fma(ay, q.b1.c2, fma(ax, q.b0.c2, acc.c2)))),
        fma(aw, q.b3.c3, fma(az, q.b2.c3, fma(ay, q.b1.c3, fma(ax, q.b0.c3, acc.c3)))),
    );
}

fn store4(row: u32, col: u32, v: vec4<f32>) {
    let i = p.base_c + row * p.n + col;
    if col + 3u < p.n {
        c[i] = v.x;
        c[i + 1u] = v.y;
        c[i + 2u] = v.z;
        c[i + 3u] = v.w;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if col + j < p.n {
            c[i + j] = v[j];
        }
    }
}

// Writes one row of the block, skipping rows and columns past the edge.
fn store_row(row: u32, col: u32, r: Row) {
    if row >= p.m {
        return;
    }
    store4(row, col, r.c0);
    store4(row, col + 4u, r.c1);
    store4(row, col + 8u, r.c2);
    store4(row, col + 12u, r.c3);
}

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let x4 = gid.x * 4u;
    if x4 >= p.n4 {
        return;
    }
    let row0 = wid.y * 16u;
    // The block's 16 rows lie in one page of A (pages are a multiple of 16).
    let xa = (row0 >> p.shift_a) * p.k4;
    let ya = row0 & ((1u << p.shift_a) - 1u);
    let mask_b = (1u << p.shift_b) - 1u;

    var r0 = Row(); var r1 = Row(); var r2 = Row(); var r3 = Row();
    var r4 = Row(); var r5 = Row(); var r6 = Row(); var r7 = Row();
    var r8 = Row(); var r9 = Row(); var r10 = Row(); var r11 = Row();
    var r12 = Row(); var r13 = Row(); var r14 = Row(); var r15 = Row();
    for (var kq = 0u; kq < p.k4; kq++) {
        // Rows k .. k + 4 of B lie in one page too.
        let k = kq * 4u;
        let xb = (k >> p.shift_b) * p.n4 + x4;
        let yb = k & mask_b;
        let q = Panel(b_row(xb, yb), b_row(xb, yb + 1u), b_row(xb, yb + 2u), b_row(xb, yb + 3u));
        let x = xa + kq;
        r0 = update(r0, textureLoad(ta, vec2<u32>(x, ya), 0), q);
        r1 = update(r1, textureLoad(ta, vec2<u32>(x, ya + 1u), 0), q);
        r2 = update(r2, textureLoad(ta, vec2<u32>(x, ya + 2u), 0), q);
        r3 = update(r3, textureLoad(ta, vec2<u32>(x, ya + 3u), 0), q);
        r4 = update(r4, textureLoad(ta, vec2<u32>(x, ya + 4u), 0), q);
        r5 = update(r5, textureLoad(ta, vec2<u32>(x, ya + 5u), 0), q);
        r6 = update(r6, textureLoad(ta, vec2<u32>(x, ya + 6u), 0), q);
        r7 = update(r7, textureLoad(ta, vec2<u32>(x, ya + 7u), 0), q);
        r8 = update(r8, textureLoad(ta, vec2<u32>(x, ya + 8u), 0), q);
        r9 = update(r9, textureLoad(ta, vec2<u32>(x, ya + 9u), 0), q);
        r10 = update(r10, textureLoad(ta, vec2<u32>(x, ya + 10u), 0), q);
        r11 = update(r11, textureLoad(ta, vec2<u32>(x, ya + 11u), 0), q);
        r12 = update(r12, textureLoad(ta, vec2<u32>(x, ya + 12u), 0), q);
        r13 = update(r13, textureLoad(ta, vec2<u32>(x, ya + 13u), 0), q);
        r14 = update(r14, textureLoad(ta, vec2<u32>(x, ya + 14u), 0), q);
        r15 = update(r15, textureLoad(ta, vec2<u32>(x, ya + 15u), 0), q);
    }

    let col0 = x4 * 4u;
    store_row(row0, col0, r0);
    store_row(row0 + 1u, col0, r1);
    store_row(row0 + 2u, col0, r2);
    store_row(row0 + 3u, col0, r3);
    store_row(row0 + 4u, col0, r4);
    store_row(row0 + 5u, col0, r5);
    store_row(row0 + 6u, col0, r6);
    store_row(row0 + 7u, col0, r7);
    store_row(row0 + 8u, col0, r8);
    store_row(row0 + 9u, col0, r9);
    store_row(row0 + 10u, col0, r10);
    store_row(row0 + 11u, col0, r11);
    store_row(row0 + 12u, col0, r12);
    store_row(row0 + 13u, col0, r13);
    store_row(row0 + 14u, col0, r14);
    store_row(row0 + 15u, col0, r15);
}
