// matmul, operand packing for the `texture` variant.
//
// Copies op(X), a rows x cols matrix read from a storage buffer (op is the
// transpose when TRANS is set), into an rgba32float texture: texel (c, r)
// holds op(X)[r, 4c .. 4c + 4]. Texels past the matrix's edge get zeros, so
// the matmul kernel reads whole register blocks with no bounds tests and the
// padding adds nothing to the sums.
//
// A texture side is limited (max_texture_dimension_2d), so tall matrices are
// folded into pages: rows [j * 2^shift, (j + 1) * 2^shift) go to texel columns
// [j * width, (j + 1) * width), where width is the texels per matrix row.

override TRANS: bool = false;

struct Params {
    rows: u32,
    cols: u32,
    // Element offset of this matrix in the buffer (a matrix of a batch).
    base: u32,
    // Texels per matrix row, padding included.
    width: u32,
    // log2 of the page height.
    shift: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

// op(X)[row, col], zero outside the matrix.
fn at(row: u32, col: u32) -> f32 {
    if row >= p.rows || col >= p.cols {
        return 0.0;
    }
    if TRANS {
        return x[p.base + col * p.rows + row];
    }
    return x[p.base + row * p.cols + col];
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let size = textureDimensions(dst);
    if gid.x >= size.x || gid.y >= size.y {
        return;
    }
    let page = gid.x / p.width;
    let col = (gid.x % p.width) * 4u;
    let row = (page << p.shift) + gid.y;
    let v = vec4<f32>(at(row, col), at(row, col + 1u), at(row, col + 2u), at(row, col + 3u));
    textureStore(dst, gid.xy, v);
}
