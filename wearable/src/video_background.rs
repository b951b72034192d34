//! The passthrough picture: the camera's newest I420 or NV12 frame drawn behind everything a
//! Bevy camera renders, converted to RGB on the GPU by `shaders/video_background.wgsl`
//! (BT.601, limited range), with [`i420_to_rgb`] and [`nv12_to_rgb`] as its references.

use bevy::asset::{RenderAssetUsages, uuid_handle};
use bevy::camera::visibility::{NoFrustumCulling, RenderLayers};
use bevy::mesh::{Indices, MeshVertexBufferLayoutRef, PrimitiveTopology};
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, Extent3d, RenderPipelineDescriptor, SpecializedMeshPipelineError,
    TextureDimension, TextureFormat,
};
use bevy::shader::{Shader, ShaderDefVal, ShaderRef};
use farsight_media::RawFormat;
use image::RgbImage;

use crate::anchor::NotInWorld;

const VIDEO_BACKGROUND_SHADER: Handle<Shader> =
    uuid_handle!("0b7e4f9a-3c52-4d1e-8a6f-2e9d5c7b1a43");

/// Y, U and V of black in limited range: what the background shows before the first frame.
const BLACK: [u8; 3] = [16, 128, 128];

/// Adds the video background to every camera with a [`VideoBackground`], showing frames of
/// `size` handed to [`VideoFeed::show`].
#[derive(Debug, Clone)]
pub struct VideoBackgroundPlugin {
    pub size: UVec2,
}

impl Plugin for VideoBackgroundPlugin {
    fn build(&self, app: &mut App) {
        crate::shaders::add_material::<VideoBackgroundMaterial>(
            app,
            &VIDEO_BACKGROUND_SHADER,
            include_str!("../../shaders/video_background.wgsl"),
            "shaders/video_background.wgsl",
        );
        let world = app.world_mut();
        let image = world
            .get_resource_mut::<Assets<Image>>()
            .expect("VideoBackgroundPlugin goes after DefaultPlugins")
            .add(black_frame(self.size));
        let material =
            world
                .resource_mut::<Assets<VideoBackgroundMaterial>>()
                .add(VideoBackgroundMaterial {
                    frame: image.clone(),
                    format: RawFormat::I420,
                });
        let quad = world
            .get_resource_mut::<Assets<Mesh>>()
            .expect("VideoBackgroundPlugin goes after DefaultPlugins")
            .add(screen_quad());
        app.insert_resource(VideoFeed {
            image,
            size: self.size,
            material,
            quad,
        })
        .add_observer(add_background);
    }
}

/// Put on a camera to draw the video behind everything it sees. The background is a child
/// of the camera in the camera's render layers. Colours come out as the camera sent them on
/// a camera without HDR (or with `Tonemapping::None`).
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct VideoBackground;

/// The texture the camera's frames are written into.
#[derive(Resource, Debug, Clone)]
pub struct VideoFeed {
    /// `R8Unorm`, `size.x` wide and `size.y * 3 / 2` tall: the frame's bytes as they come,
    /// read in rows of `size.x` — the Y plane, then for I420 the U and V planes two half-width
    /// rows to a texture row, for NV12 one row of interleaved U and V to a texture row.
    pub image: Handle<Image>,
    pub size: UVec2,
    material: Handle<VideoBackgroundMaterial>,
    quad: Handle<Mesh>,
}

#[derive(Debug, thiserror::Error)]
pub enum VideoBackgroundError {
    #[error("a {got_width}×{got_height} frame for a {width}×{height} background")]
    WrongSize {
        got_width: u32,
        got_height: u32,
        width: u32,
        height: u32,
    },
    #[error("{got} bytes of {format:?} for a {width}×{height} background, expected {expected}")]
    WrongLength {
        format: RawFormat,
        got: usize,
        expected: usize,
        width: u32,
        height: u32,
    },
    #[error("{0:?} frames cannot be shown: the background takes I420 or NV12")]
    NotYuv(RawFormat),
    #[error("the background's image is gone")]
    NoImage,
    #[error("the background's material is gone")]
    NoMaterial,
}

impl VideoFeed {
    /// Shows a `format` frame of `size` from the next render on.
    pub fn show(
        &self,
        images: &mut Assets<Image>,
        materials: &mut Assets<VideoBackgroundMaterial>,
        size: UVec2,
        format: RawFormat,
        bytes: &[u8],
    ) -> Result<(), VideoBackgroundError> {
        let (width, height) = (self.size.x, self.size.y);
        if format == RawFormat::Rgba {
            return Err(VideoBackgroundError::NotYuv(format));
        }
        if size != self.size {
            return Err(VideoBackgroundError::WrongSize {
                got_width: size.x,
                got_height: size.y,
                width,
                height,
            });
        }
        let expected = yuv420_len(self.size);
        if bytes.len() != expected {
            return Err(VideoBackgroundError::WrongLength {
                format,
                got: bytes.len(),
                expected,
                width,
                height,
            });
        }
        let mut image = images
            .get_mut(&self.image)
            .ok_or(VideoBackgroundError::NoImage)?;
        // Same size and format: the renderer writes into the texture it has.
        match &mut image.data {
            Some(data) => data.copy_from_slice(bytes),
            None => image.data = Some(bytes.to_vec()),
        }
        // Touched only on a change: a changed material is prepared again, and a new layout
        // picks another pipeline.
        let material = materials
            .get(&self.material)
            .ok_or(VideoBackgroundError::NoMaterial)?;
        if material.format != format {
            materials
                .get_mut(&self.material)
                .ok_or(VideoBackgroundError::NoMaterial)?
                .format = format;
        }
        Ok(())
    }
}

/// Bytes in an I420 or NV12 frame of `size` without row padding.
fn yuv420_len(size: UVec2) -> usize {
    size.x as usize * size.y as usize * 3 / 2
}

fn black_frame(size: UVec2) -> Image {
    let luma = size.x as usize * size.y as usize;
    let mut data = vec![BLACK[0]; luma];
    // U and V of black are the same, so this is black in both layouts.
    data.resize(yuv420_len(size), BLACK[1]);
    Image::new(
        Extent3d {
            width: size.x,
            height: size.y * 3 / 2,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::R8Unorm,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    )
}

/// Two triangles covering clip space; the vertex shader takes their positions as they are.
fn screen_quad() -> Mesh {
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(
        Mesh::ATTRIBUTE_POSITION,
        vec![
            [-1.0, -1.0, 0.0],
            [1.0, -1.0, 0.0],
            [1.0, 1.0, 0.0],
            [-1.0, 1.0, 0.0],
        ],
    )
    .with_inserted_indices(Indices::U32(vec![0, 1, 2, 0, 2, 3]))
}

fn add_background(
    add: On<Add, VideoBackground>,
    mut commands: Commands,
    feed: Res<VideoFeed>,
    layers: Query<&RenderLayers>,
) {
    let mut background = commands.spawn((
        Name::new("video background"),
        Mesh3d(feed.quad.clone()),
        MeshMaterial3d(feed.material.clone()),
        // The quad is placed on screen by its shader, wherever its transform says it is; in
        // front of the camera all the same, in case something culls it by its bounds.
        Transform::from_xyz(0.0, 0.0, -1.0),
        NoFrustumCulling,
        NotInWorld,
        ChildOf(add.entity),
    ));
    if let Ok(layers) = layers.get(add.entity) {
        background.insert(layers.clone());
    }
}

/// The camera's picture, drawn behind the scene from the camera's I420 or NV12 frame.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
#[bind_group_data(VideoBackgroundKey)]
pub struct VideoBackgroundMaterial {
    #[texture(0)]
    pub frame: Handle<Image>,
    /// How `frame` holds the chroma: [`RawFormat::I420`] or [`RawFormat::Nv12`].
    pub format: RawFormat,
}

/// The pipeline variant a material needs: the layout is a shader def, not a uniform, so the
/// shader does not branch per pixel on something that changes at most once.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoBackgroundKey {
    nv12: bool,
}

impl From<&VideoBackgroundMaterial> for VideoBackgroundKey {
    fn from(material: &VideoBackgroundMaterial) -> Self {
        Self {
            nv12: material.format == RawFormat::Nv12,
        }
    }
}

impl Material for VideoBackgroundMaterial {
    fn vertex_shader() -> ShaderRef {
        ShaderRef::Handle(VIDEO_BACKGROUND_SHADER)
    }

    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(VIDEO_BACKGROUND_SHADER)
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }

    fn specialize(
        _pipeline: &MaterialPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        layout: &MeshVertexBufferLayoutRef,
        key: MaterialPipelineKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        // Pushed only when set: `#ifdef` takes a def that is present as defined, false or not.
        if key.bind_group_data.nv12
            && let Some(fragment) = descriptor.fragment.as_mut()
        {
            fragment.shader_defs.push(ShaderDefVal::from("NV12"));
        }
        descriptor.vertex.buffers = vec![
            layout
                .0
                .get_layout(&[Mesh::ATTRIBUTE_POSITION.at_shader_location(0)])?,
        ];
        descriptor.primitive.cull_mode = None;
        if let Some(depth) = descriptor.depth_stencil.as_mut() {
            // On the far plane already; nothing is ever drawn behind it.
            depth.depth_write_enabled = Some(false);
        }
        Ok(())
    }
}

/// One BT.601 limited-range sample to gamma-encoded RGB, as the shader converts it.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let l = (f32::from(y) - 16.0) / 219.0;
    let pb = (f32::from(u) - 128.0) / 224.0;
    let pr = (f32::from(v) - 128.0) / 224.0;
    let rgb = [
        l + 1.402 * pr,
        l - 0.344_136 * pb - 0.714_136 * pr,
        l + 1.772 * pb,
    ];
    rgb.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8)
}

/// The picture in an I420 frame of `size`, or `None` when `i420` is not that many bytes
/// (`size` even, rows unpadded).
pub fn i420_to_rgb(i420: &[u8], size: UVec2) -> Option<RgbImage> {
    frame_to_rgb(RawFormat::I420, i420, size)
}

/// The picture in an NV12 frame of `size`, or `None` when `nv12` is not that many bytes
/// (`size` even, rows unpadded).
pub fn nv12_to_rgb(nv12: &[u8], size: UVec2) -> Option<RgbImage> {
    frame_to_rgb(RawFormat::Nv12, nv12, size)
}

/// The picture in a frame of `size` laid out as `format`, as the shader draws it; `None` for
/// RGBA or a frame of the wrong length.
pub fn frame_to_rgb(format: RawFormat, bytes: &[u8], size: UVec2) -> Option<RgbImage> {
    if !size.x.is_multiple_of(2) || !size.y.is_multiple_of(2) || bytes.len() != yuv420_len(size) {
        return None;
    }
    let (width, height) = (size.x as usize, size.y as usize);
    let (luma, chroma) = bytes.split_at(width * height);
    let plane = width * height / 4;
    // Where U and V of the chroma sample at (`cx`, `cy`) lie in the bytes after the Y plane:
    // the only difference between the layouts.
    let uv_offsets: fn(usize, usize, usize, usize) -> (usize, usize) = match format {
        RawFormat::I420 => |width, plane, cx, cy| {
            let c = cy * (width / 2) + cx;
            (c, plane + c)
        },
        RawFormat::Nv12 => |width, _, cx, cy| {
            let c = cy * width + 2 * cx;
            (c, c + 1)
        },
        RawFormat::Rgba => return None,
    };
    Some(RgbImage::from_fn(size.x, size.y, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let (u, v) = uv_offsets(width, plane, x / 2, y / 2);
        image::Rgb(yuv_to_rgb(luma[y * width + x], chroma[u], chroma[v]))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_black_white_and_primaries() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        // BT.601 100% colour bars, as 8-bit Y'CbCr.
        for (yuv, rgb) in [
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [0, 0, 255]),
            ([210, 16, 146], [255, 255, 0]),
        ] {
            let got = yuv_to_rgb(yuv[0], yuv[1], yuv[2]);
            for (g, want) in got.iter().zip(rgb) {
                assert!(g.abs_diff(want) <= 2, "{yuv:?} gave {got:?}, not {rgb:?}");
            }
        }
    }

    #[test]
    fn each_pixel_reads_its_own_chroma_from_the_u_and_v_planes() {
        // 8×4: the left half red, the right half blue; the bottom row of chroma different
        // again, so a mix-up of planes, rows or columns shows.
        let size = UVec2::new(8, 4);
        let mut frame = Vec::new();
        frame.extend(std::iter::repeat_n(81, 32));
        let u = [[90, 90, 240, 240], [128, 128, 128, 128]];
        let v = [[240, 240, 110, 110], [128, 128, 128, 128]];
        frame.extend(u.iter().flatten());
        frame.extend(v.iter().flatten());
        let picture = i420_to_rgb(&frame, size).expect("an 8×4 frame");
        let red = picture.get_pixel(1, 1).0;
        let blue = picture.get_pixel(6, 0).0;
        let grey = picture.get_pixel(5, 3).0;
        assert!(red[0] > 200 && red[2] < 60, "{red:?}");
        assert!(blue[2] > 120 && blue[0] < 60, "{blue:?}");
        assert_eq!(grey[0], grey[1]);
        assert_eq!(grey[1], grey[2]);
    }

    #[test]
    fn nv12_pixels_read_their_chroma_from_the_interleaved_plane() {
        // The same picture as the I420 test above, its chroma interleaved U, V per sample.
        let size = UVec2::new(8, 4);
        let u = [[90, 90, 240, 240], [128, 128, 128, 128]];
        let v = [[240, 240, 110, 110], [128, 128, 128, 128]];
        let mut i420 = vec![81; 32];
        i420.extend(u.iter().flatten());
        i420.extend(v.iter().flatten());
        let mut nv12 = vec![81; 32];
        for (u_row, v_row) in u.iter().zip(&v) {
            for (u, v) in u_row.iter().zip(v_row) {
                nv12.extend([*u, *v]);
            }
        }
        let picture = nv12_to_rgb(&nv12, size).expect("an 8×4 frame");
        assert_eq!(
            picture,
            i420_to_rgb(&i420, size).expect("an 8×4 frame"),
            "the same picture in both layouts"
        );
        // And not by accident: read as I420, the NV12 bytes are another picture.
        assert_ne!(picture, i420_to_rgb(&nv12, size).expect("an 8×4 frame"));
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_no_picture() {
        assert!(i420_to_rgb(&[0; 47], UVec2::new(8, 4)).is_none());
        assert!(nv12_to_rgb(&[0; 47], UVec2::new(8, 4)).is_none());
        assert!(frame_to_rgb(RawFormat::Rgba, &[0; 48], UVec2::new(8, 4)).is_none());
    }

    #[test]
    fn the_texture_holds_the_frame_bytes_as_they_come() {
        let size = UVec2::new(16, 6);
        let image = black_frame(size);
        assert_eq!(image.texture_descriptor.size.width, 16);
        assert_eq!(image.texture_descriptor.size.height, 9);
        assert_eq!(image.data.as_ref().map(Vec::len), Some(yuv420_len(size)));
    }
}
