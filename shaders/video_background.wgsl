// The camera's picture behind the scene. The I420 or NV12 frame arrives untouched as one
// single-channel texture, W wide and H·3/2 tall: its bytes read as rows of W, so the Y plane
// fills the first H rows and the chroma follows. I420 has the U and V planes (W/2 × H/2 each),
// two chroma rows to a texture row; NV12 (shader def NV12) one plane of U, V pairs, one chroma
// row to a texture row. Each pixel finds its three samples by their offsets in that byte
// stream.
//
// The quad covers the screen on the far plane (reversed depth: 0), so anything else the
// camera draws is in front of it.

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var frame: texture_2d<f32>;

struct Vertex {
    // Already in clip space: x and y from −1 to 1.
    @location(0) position: vec3<f32>,
}

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    // 0 to 1 across the picture, top-left to bottom-right.
    @location(0) uv: vec2<f32>,
}

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    var out: VertexOutput;
    out.clip_position = vec4<f32>(vertex.position.xy, 0.0, 1.0);
    // Clip space has +y up; the picture's rows run down.
    out.uv = vec2<f32>(vertex.position.x * 0.5 + 0.5, 0.5 - vertex.position.y * 0.5);
    return out;
}

// The 8-bit code value at `offset` in the frame's bytes.
fn code_at(offset: u32, width: u32) -> f32 {
    return textureLoad(frame, vec2<u32>(offset % width, offset / width), 0).r * 255.0;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let size = textureDimensions(frame);
    let width = size.x;
    let height = size.y * 2u / 3u;
    let x = min(u32(in.uv.x * f32(width)), width - 1u);
    let y = min(u32(in.uv.y * f32(height)), height - 1u);
    let luma_bytes = width * height;
    let y_code = code_at(y * width + x, width);
#ifdef NV12
    let chroma = luma_bytes + (y / 2u) * width + (x / 2u) * 2u;
    let u_code = code_at(chroma, width);
    let v_code = code_at(chroma + 1u, width);
#else
    let chroma = (y / 2u) * (width / 2u) + x / 2u;
    let u_code = code_at(luma_bytes + chroma, width);
    let v_code = code_at(luma_bytes + luma_bytes / 4u + chroma, width);
#endif

    // BT.601, limited range: luma 16–235, chroma 16–240 about 128.
    let l = (y_code - 16.0) / 219.0;
    let pb = (u_code - 128.0) / 224.0;
    let pr = (v_code - 128.0) / 224.0;
    let rgb = clamp(
        vec3<f32>(l + 1.402 * pr, l - 0.344136 * pb - 0.714136 * pr, l + 1.772 * pb),
        vec3<f32>(0.0),
        vec3<f32>(1.0),
    );
    // Video's RGB is gamma-encoded and the target (sRGB) encodes what it is given, so it is
    // handed light, and stores the camera's own values.
    return vec4<f32>(srgb_to_linear(rgb), 1.0);
}
