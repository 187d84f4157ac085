// Batched transpose: out[b, j, i] = x[b, i, j] for x of shape [batch, rows, cols].
//
// A 16 x 16 tile is staged through workgroup memory so that both the reads
// of x and the writes of out walk consecutive addresses (a naive transpose
// makes one side stride by a whole row). The tile has one padding column so
// that a column of the tile falls in different memory banks.

const T: u32 = 16u;

struct Params {
    rows: u32,
    cols: u32,
    batch: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> tile: array<f32, 272>; // T * (T + 1)

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let base = wid.z * p.rows * p.cols;
    let r = wid.y * T + lid.y;
    let c = wid.x * T + lid.x;
    if r < p.rows && c < p.cols {
        tile[lid.y * (T + 1u) + lid.x] = x[base + r * p.cols + c];
    }
    workgroupBarrier();
    // Swap roles: this invocation now writes row (tile column) lid.y.
    let orow = wid.x * T + lid.y;
    let ocol = wid.y * T + lid.x;
    if orow < p.cols && ocol < p.rows {
        out[base + orow * p.rows + ocol] = tile[lid.x * (T + 1u) + lid.y];
    }
}
