// conv2d `texture_subgroup`: the `texture` variant's kernels with the
// operand that every lane of a subgroup reads alike fetched once per
// subgroup: the weight panel of the forward and the input gradient, dy's
// texels in the weight gradient. Not a module of its own: the host (and
// tests/shaders.rs) builds it from texture.wgsl with the functions between
// `panel:begin` and `panel:end` replaced by this file,
// and runs it where subgroups have exactly 8 invocations (llvmpipe at 256
// bits).
//
// Why: the lanes of a subgroup compute blocks of the same 16 output
// channels, so they all fetch the same 16 weight texels per 4 channels of a
// tap. On llvmpipe a texel fetch costs about the same whatever the lanes'
// addresses (8 address extractions and 16-byte loads, then a transpose), so
// those 16 uniform fetches cost as much as the 16 fetches of the input,
// which differ per lane. Here lane l fetches texel l % 4 of rows k + l / 4
// and k + 2 + l / 4, two fetches instead of 16, and every lane takes the 16
// texels by `subgroupBroadcast`, which compiles to a lane extraction and a
// splat. The FMAs and their order are unchanged, so the results are the
// same bits as `texture`'s.

// B[k .. k + 4, the 16 columns from texel wx], shared by the subgroup.
fn panel(wx: u32, k: u32, lane: u32) -> Panel {
    let lo = textureLoad(tw, vec2<u32>(wx + (lane & 3u), k + (lane >> 2u)), 0);
    let hi = textureLoad(tw, vec2<u32>(wx + (lane & 3u), k + 2u + (lane >> 2u)), 0);
    return Panel(
        Row(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u)),
        Row(subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u), subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u)),
        Row(subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u), subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u)),
        Row(subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u), subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u)),
    );
}

// `weight`: dy's 4 texels at dd from group og, shared by the subgroup,
// whose lanes all sum the same range of pixels (BLOCK_ALIGN = 8): lane l
// fetches texel og + l % 4, and every lane takes the 4 by broadcast.
fn dy_texels(dd: vec2<u32>, og: u32, lane: u32) -> Quad {
    let mine = textureLoad(tdy, dd + vec2<u32>(min(og + (lane & 3u), p.o4 - 1u), 0u), 0);
    return Quad(
        subgroupBroadcast(mine, 0u),
        subgroupBroadcast(mine, 1u),
        subgroupBroadcast(mine, 2u),
        subgroupBroadcast(mine, 3u),
    );
}

@compute @workgroup_size(64)
fn forward_subgroup(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    forward_block(gid, wid, lane);
}

@compute @workgroup_size(64)
fn input_subgroup(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    input_block(gid, wid, lane);
}

// Dispatched with BLOCK_ALIGN = 8: a workgroup is one subgroup.
@compute @workgroup_size(8)
fn weight_subgroup(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    weight_block(gid, wid, lane);
}
