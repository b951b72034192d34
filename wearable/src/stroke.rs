//! The material marks are drawn with: strokes of constant width on screen with a dark
//! outline, from `shaders/mark_stroke.wgsl` (embedded, so the binary runs from anywhere), and
//! the meshes it draws — one quad per segment, widened on the GPU.

use bevy::asset::{RenderAssetUsages, uuid_handle};
use bevy::mesh::{Indices, MeshVertexAttribute, MeshVertexBufferLayoutRef, PrimitiveTopology};
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, CompareFunction, RenderPipelineDescriptor, ShaderType,
    SpecializedMeshPipelineError, VertexFormat,
};
use bevy::shader::{Shader, ShaderRef};

const MARK_STROKE_SHADER: Handle<Shader> = uuid_handle!("5d0f6c2e-8f51-4a63-9a57-3c1b2e7d4f10");

/// The other end of a corner's segment.
const ATTRIBUTE_OTHER_END: MeshVertexAttribute = MeshVertexAttribute::new(
    "MarkStroke_OtherEnd",
    0x4641_5253_0001,
    VertexFormat::Float32x3,
);
/// Which corner of its segment's quad a vertex is: side (−1 or +1), and 0 at the start, 1 at
/// the end.
const ATTRIBUTE_CORNER: MeshVertexAttribute = MeshVertexAttribute::new(
    "MarkStroke_Corner",
    0x4641_5253_0002,
    VertexFormat::Float32x2,
);

/// Pixels of outline on each side of a stroke.
const OUTLINE_PX: f32 = 1.5;

#[derive(Debug)]
pub struct StrokePlugin;

impl Plugin for StrokePlugin {
    fn build(&self, app: &mut App) {
        crate::shaders::add_material::<StrokeMaterial>(
            app,
            &MARK_STROKE_SHADER,
            include_str!("../../shaders/mark_stroke.wgsl"),
            "shaders/mark_stroke.wgsl",
        );
    }
}

/// A mark's strokes in one colour: drawn where visible (`behind: false`), or as a faded,
/// dashed hint where something stands in front of them (`behind: true`).
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
#[bind_group_data(StrokeKey)]
pub struct StrokeMaterial {
    #[uniform(0)]
    pub stroke: StrokeUniform,
    pub behind: bool,
}

#[derive(ShaderType, Debug, Clone, Copy)]
pub struct StrokeUniform {
    pub color: LinearRgba,
    pub outline_color: LinearRgba,
    pub half_width_px: f32,
    pub outline_px: f32,
    pub padding: Vec2,
}

impl StrokeMaterial {
    /// A stroke `width_px` wide (its coloured core), with a dark outline around it.
    pub fn new(color: Color, width_px: f32, behind: bool) -> Self {
        let color = LinearRgba::from(color);
        // Dark enough to stand out on light surfaces, the core carrying it on dark ones.
        let outline_color = LinearRgba::new(
            color.red * 0.1,
            color.green * 0.1,
            color.blue * 0.1,
            color.alpha,
        );
        Self {
            stroke: StrokeUniform {
                color,
                outline_color,
                half_width_px: width_px / 2.0,
                outline_px: OUTLINE_PX,
                padding: Vec2::ZERO,
            },
            behind,
        }
    }
}

#[repr(C)]
#[derive(Debug, Eq, PartialEq, Hash, Copy, Clone)]
pub struct StrokeKey {
    behind: bool,
}

impl From<&StrokeMaterial> for StrokeKey {
    fn from(material: &StrokeMaterial) -> Self {
        Self {
            behind: material.behind,
        }
    }
}

impl Material for StrokeMaterial {
    fn vertex_shader() -> ShaderRef {
        ShaderRef::Handle(MARK_STROKE_SHADER)
    }

    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(MARK_STROKE_SHADER)
    }

    fn alpha_mode(&self) -> AlphaMode {
        if self.behind {
            AlphaMode::Blend
        } else {
            AlphaMode::Opaque
        }
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
        descriptor.vertex.buffers = vec![layout.0.get_layout(&[
            Mesh::ATTRIBUTE_POSITION.at_shader_location(0),
            ATTRIBUTE_OTHER_END.at_shader_location(1),
            ATTRIBUTE_CORNER.at_shader_location(2),
        ])?];
        // A quad's winding depends on which way the segment runs on screen.
        descriptor.primitive.cull_mode = None;
        if key.bind_group_data.behind {
            descriptor.vertex.shader_defs.push("MARK_BEHIND".into());
            if let Some(fragment) = descriptor.fragment.as_mut() {
                fragment.shader_defs.push("MARK_BEHIND".into());
            }
            if let Some(depth) = descriptor.depth_stencil.as_mut() {
                // Reversed depth: passes only where something nearer was drawn.
                depth.depth_compare = Some(CompareFunction::Less);
                depth.depth_write_enabled = Some(false);
            }
        }
        Ok(())
    }
}

/// One mesh for a mark's segments (a segment whose ends coincide is a square dot).
pub fn stroke_mesh(segments: &[(Vec3, Vec3)]) -> Mesh {
    let mut positions = Vec::with_capacity(segments.len() * 4);
    let mut others = Vec::with_capacity(segments.len() * 4);
    let mut corners = Vec::with_capacity(segments.len() * 4);
    let mut indices = Vec::with_capacity(segments.len() * 6);
    for (start, end) in segments {
        let first = u32::try_from(positions.len()).expect("a mark has few segments");
        for (here, there, corner) in [
            (start, end, [-1.0, 0.0]),
            (start, end, [1.0, 0.0]),
            (end, start, [-1.0, 1.0]),
            (end, start, [1.0, 1.0]),
        ] {
            positions.push(here.to_array());
            others.push(there.to_array());
            corners.push(corner);
        }
        indices.extend([0, 1, 2, 2, 1, 3].map(|i| first + i));
    }
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_attribute(ATTRIBUTE_OTHER_END, others)
    .with_inserted_attribute(ATTRIBUTE_CORNER, corners)
    .with_inserted_indices(Indices::U32(indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_segment_is_a_quad_on_its_ends() {
        let (a, b, c) = (Vec3::ZERO, Vec3::X, Vec3::Y);
        let mesh = stroke_mesh(&[(a, b), (b, c)]);
        assert_eq!(mesh.count_vertices(), 8);
        assert_eq!(mesh.indices().map(Indices::len), Some(12));
        let Some(bevy::mesh::VertexAttributeValues::Float32x3(positions)) =
            mesh.attribute(Mesh::ATTRIBUTE_POSITION)
        else {
            panic!("positions are three floats");
        };
        // Corners sit on the segment's ends: the GPU spreads them apart on screen.
        assert_eq!(
            positions[..4],
            [[0.0; 3], [0.0; 3], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
        );
    }
}
