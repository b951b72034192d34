// Agents' marks as strokes of constant width on screen, with a dark outline so they read on
// any background. Each segment of a stroke is a quad whose four corners all sit on the
// segment's ends; the vertex shader spreads them apart in clip space, a number of pixels
// across the segment and past its ends, so the stroke is as wide near as far.
//
// The stroke is drawn twice. The visible pass tests depth as any surface does, but from a
// little nearer than the anchored points, so a mark lying on a surface (or behind a thin
// occluder) is not hidden by it. The behind pass (MARK_BEHIND) draws, dashed and faded, only
// what is clearly behind something else, as a hint of where the mark goes.

#import bevy_pbr::mesh_functions::get_world_from_local
#import bevy_pbr::mesh_view_bindings::view

struct MarkStroke {
    color: vec4<f32>,
    outline_color: vec4<f32>,
    // Half the width of the coloured core, and the outline's width, in pixels.
    half_width_px: f32,
    outline_px: f32,
    _padding: vec2<f32>,
}

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> stroke: MarkStroke;

#ifdef MARK_BEHIND
// A little nearer than the visible pass, so the hint is not drawn over the stroke's own
// visible pixels (where segments of a stroke meet, their depths differ slightly).
const NEARER: f32 = 0.975;
const HINT_ALPHA: f32 = 0.45;
const DASH_PX: f32 = 6.0;
#else
// Fraction of its distance the stroke is drawn from: 2% nearer than where it is anchored.
const NEARER: f32 = 0.98;
#endif

struct Vertex {
    @builtin(instance_index) instance_index: u32,
    // This corner's end of the segment, and the other end.
    @location(0) position: vec3<f32>,
    @location(1) other: vec3<f32>,
    // x: -1 or +1, the side of the segment; y: 0 at the segment's start, 1 at its end.
    @location(2) corner: vec2<f32>,
}

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    // Pixels from the segment's centre line.
    @location(0) @interpolate(linear) across: f32,
    // Pixels along the segment from its start.
    @location(1) @interpolate(linear) along: f32,
    // The segment's length on screen, in pixels.
    @location(2) @interpolate(flat) length_px: f32,
}

fn to_view(world_from_local: mat4x4<f32>, local: vec3<f32>) -> vec3<f32> {
    let world = world_from_local * vec4<f32>(local, 1.0);
    return (view.view_from_world * world).xyz;
}

fn to_clip(in_view: vec3<f32>) -> vec4<f32> {
    // Scaling a point towards the eye moves it nearer without moving it on screen.
    return view.clip_from_view * vec4<f32>(in_view * NEARER, 1.0);
}

// `a`, moved along the segment to `b` until it is in front of the near plane (the view looks
// down −z), so a segment passing beside the head is drawn up to the edge of the view.
fn in_front(a: vec3<f32>, b: vec3<f32>, limit: f32) -> vec3<f32> {
    if a.z <= limit {
        return a;
    }
    return mix(a, b, (a.z - limit) / (a.z - b.z));
}

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    var out: VertexOutput;
    let world_from_local = get_world_from_local(vertex.instance_index);
    let is_end = vertex.corner.y > 0.5;
    let here_view = to_view(world_from_local, vertex.position);
    let there_view = to_view(world_from_local, vertex.other);
    // Perspective projection (infinite, reversed depth): the near plane's distance.
    let limit = -1.01 * view.clip_from_view[3][2] / NEARER;
    if here_view.z > limit && there_view.z > limit {
        // Wholly behind the head: outside the clip volume, so nothing is drawn.
        out.clip_position = vec4<f32>(0.0, 0.0, -1.0, 1.0);
        return out;
    }
    let here = to_clip(in_front(here_view, there_view, limit));
    let there = to_clip(in_front(there_view, here_view, limit));
    let start = select(here, there, is_end);
    let end = select(there, here, is_end);

    let half_screen = view.viewport.zw * 0.5;
    let start_px = start.xy / start.w * half_screen;
    let end_px = end.xy / end.w * half_screen;
    let length_px = distance(start_px, end_px);
    // A segment shorter than a pixel (a pin) is drawn as a square around its point.
    var along_dir = vec2<f32>(1.0, 0.0);
    if length_px > 1e-3 {
        along_dir = (end_px - start_px) / length_px;
    }
    let across_dir = vec2<f32>(-along_dir.y, along_dir.x);

    let reach = stroke.half_width_px + stroke.outline_px;
    let side = vertex.corner.x;
    let past = select(-1.0, 1.0, is_end);
    let offset_px = across_dir * side * reach + along_dir * past * reach;

    out.clip_position = vec4<f32>(here.xy + offset_px / half_screen * here.w, here.zw);
    out.across = side * reach;
    out.along = select(-reach, length_px + reach, is_end);
    out.length_px = length_px;
    return out;
}

// How far outside the segment's core a fragment is, in pixels: negative inside.
fn outside_core(in: VertexOutput) -> f32 {
    let past_ends = max(-in.along, in.along - in.length_px);
    return max(abs(in.across), past_ends) - stroke.half_width_px;
}

#ifdef MARK_BEHIND
@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    if fract(in.along / (2.0 * DASH_PX)) > 0.5 {
        discard;
    }
    let color = select(stroke.color, stroke.outline_color, outside_core(in) > 0.0);
    return vec4<f32>(color.rgb, color.a * HINT_ALPHA);
}
#else
struct FragmentOutput {
    @location(0) color: vec4<f32>,
    @builtin(frag_depth) depth: f32,
}

@fragment
fn fragment(in: VertexOutput) -> FragmentOutput {
    var out: FragmentOutput;
    let outline = outside_core(in) > 0.0;
    out.color = select(stroke.color, stroke.outline_color, outline);
    // The outline sits a hair behind every core, so where segments of a stroke meet, one's
    // outline never covers the next one's colour (reversed depth: smaller is farther).
    out.depth = select(in.clip_position.z, in.clip_position.z * 0.999, outline);
    return out;
}
#endif
