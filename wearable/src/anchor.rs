//! Anchoring agents' marks in the world. The wearable remembers the camera of every frame it
//! published for a few seconds (`farsight_media::FrameRing`); a mark drawn on frame F is
//! unprojected with F's camera at the depth seen at each marked pixel, sent back to the relay
//! as `AnchorResolved`, and drawn in the scene so it stays on the object as the head moves.
//!
//! In the simulator the depth at a pixel of frame F is measured by casting the ray through
//! that pixel from F's camera into the scene's meshes: the scene is static, so the ray cast
//! now finds what F's depth buffer held. Where a ray hits nothing, or F is no longer
//! remembered, the mark lies on a plane at the frame's median depth and says so.

use bevy::ecs::system::SystemParam;
use bevy::mesh::{Indices, VertexAttributeValues};
use bevy::prelude::*;
use farsight_media::FrameRing;
use farsight_protocol::control::DepthSource;
use farsight_protocol::{Annotate, CameraModel, ControlMessage, FrameSeq};
use nalgebra::Point2;

use crate::link::{LinkEvent, LinkReplies};

/// Frames remembered: ten seconds at 30 frames a second, longer than an agent takes to draw.
pub const RING_FRAMES: usize = 300;

/// A ray must travel this far before a hit counts, so the camera does not hit itself.
const MIN_HIT_DISTANCE: f32 = 1e-4;

#[derive(Debug)]
pub struct AnchorPlugin;

impl Plugin for AnchorPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<FramePublished>()
            .add_message::<LinkEvent>()
            .add_message::<MarkAnchored>()
            .init_resource::<PublishedFrames>()
            .add_systems(Update, anchor_marks.in_set(AnchorMarks));
    }
}

/// Where marks are anchored as they arrive: whoever draws them runs after it.
#[derive(SystemSet, Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnchorMarks;

/// A frame handed to the encoder, with the camera that drew it.
#[derive(Message, Clone, Copy, Debug, PartialEq)]
pub struct FramePublished {
    pub seq: FrameSeq,
    pub camera: CameraModel,
}

/// An agent's mark placed in the world: one world point per marked point, in order.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct MarkAnchored {
    pub mark: Annotate,
    pub points: Vec<Vec3>,
    pub depth: DepthSource,
    /// Where the camera of the marked frame was: flat marks (circles) face it.
    pub eye: Vec3,
}

/// The cameras of the last [`RING_FRAMES`] published frames, that marks are anchored against.
#[derive(Resource, Debug, Deref, DerefMut)]
pub struct PublishedFrames(pub FrameRing);

impl Default for PublishedFrames {
    fn default() -> Self {
        Self(FrameRing::new(RING_FRAMES))
    }
}

/// Drawn in the view but not part of the world that depth is measured in: the marks, the
/// camera's picture behind everything.
#[derive(Component, Debug, Default)]
pub struct NotInWorld;

/// The scene's solid meshes (not the marks drawn in it), for ray casts.
#[derive(SystemParam)]
pub struct SceneGeometry<'w, 's> {
    meshes: Res<'w, Assets<Mesh>>,
    solids: Query<'w, 's, (&'static Mesh3d, &'static GlobalTransform), Without<NotInWorld>>,
}

impl std::fmt::Debug for SceneGeometry<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SceneGeometry")
            .field("solids", &self.solids.iter().len())
            .finish_non_exhaustive()
    }
}

impl SceneGeometry<'_, '_> {
    /// The smallest `t` at which `origin + t · direction` meets a mesh, if any.
    pub fn cast(&self, origin: Vec3, direction: Vec3) -> Option<f32> {
        self.solids
            .iter()
            .filter_map(|(mesh, transform)| {
                let mesh = self.meshes.get(&mesh.0)?;
                // The same t in the mesh's own space: the affine map keeps ratios on a line.
                let local = transform.affine().inverse();
                ray_mesh(
                    mesh,
                    local.transform_point3(origin),
                    local.transform_vector3(direction),
                )
            })
            .min_by(f32::total_cmp)
    }

    /// The depth along the optical axis seen at `pixel` of a frame taken by `camera`.
    pub fn depth_at(&self, camera: &CameraModel, pixel: Point2<f64>) -> Option<f64> {
        let eye = camera.pose.translation;
        // The ray to the point at depth 1: the t of a hit along it is that hit's depth.
        let through = camera.unproject(pixel, 1.0).coords - eye;
        self.cast(to_vec3(eye), to_vec3(through))
            .map(f64::from)
            .filter(|d| *d > 0.0)
    }
}

fn to_vec3(v: nalgebra::Vector3<f64>) -> Vec3 {
    Vec3::new(v.x as f32, v.y as f32, v.z as f32)
}

/// The nearest hit of a ray with a triangle mesh, both sides of every triangle counting.
fn ray_mesh(mesh: &Mesh, origin: Vec3, direction: Vec3) -> Option<f32> {
    let Ok(Some(VertexAttributeValues::Float32x3(positions))) =
        mesh.try_attribute_option(Mesh::ATTRIBUTE_POSITION)
    else {
        return None;
    };
    let vertex = |i: usize| positions.get(i).map(|p| Vec3::from_array(*p));
    let triangles: Vec<usize> = match mesh.try_indices_option() {
        Ok(Some(indices @ (Indices::U16(_) | Indices::U32(_)))) => indices.iter().collect(),
        Ok(None) => (0..positions.len()).collect(),
        Err(_) => return None,
    };
    triangles
        .chunks_exact(3)
        .filter_map(|t| {
            ray_triangle(
                origin,
                direction,
                [vertex(t[0])?, vertex(t[1])?, vertex(t[2])?],
            )
        })
        .min_by(f32::total_cmp)
}

/// Möller–Trumbore: the `t` where `origin + t · direction` crosses the triangle.
fn ray_triangle(origin: Vec3, direction: Vec3, [a, b, c]: [Vec3; 3]) -> Option<f32> {
    let (ab, ac) = (b - a, c - a);
    let p = direction.cross(ac);
    let det = ab.dot(p);
    if det.abs() < f32::EPSILON * ab.length() * ac.length() * direction.length() {
        return None;
    }
    let inv = 1.0 / det;
    let s = origin - a;
    let u = s.dot(p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = s.cross(ab);
    let v = direction.dot(q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let t = ac.dot(q) * inv;
    (t * direction.length() > MIN_HIT_DISTANCE).then_some(t)
}

/// Remembers each published frame's camera and anchors agents' marks as they arrive.
fn anchor_marks(
    mut published: MessageReader<FramePublished>,
    mut ring: ResMut<PublishedFrames>,
    mut events: MessageReader<LinkEvent>,
    scene: SceneGeometry,
    replies: Option<Res<LinkReplies>>,
    mut anchored: MessageWriter<MarkAnchored>,
) {
    for frame in published.read() {
        ring.record(frame.seq, frame.camera);
    }
    for event in events.read() {
        let LinkEvent::Agent(ControlMessage::Annotate(mark)) = event else {
            continue;
        };
        let Some(anchor) = ring.resolve(mark, |camera, pixel| scene.depth_at(camera, pixel)) else {
            warn!(id = %mark.id, "a mark arrived before any frame was published");
            continue;
        };
        if !anchor.remembered {
            warn!(
                id = %mark.id,
                frame = mark.frame.0,
                "the marked frame is no longer remembered; anchoring on the median plane"
            );
        }
        debug!(id = %mark.id, depth = ?anchor.depth, points = ?anchor.points, "mark anchored");
        if let Some(replies) = &replies {
            replies.send(ControlMessage::AnchorResolved {
                session: mark.session,
                id: mark.id,
                depth: anchor.depth,
                points: anchor.points.clone(),
            });
        }
        anchored.write(MarkAnchored {
            mark: mark.clone(),
            points: anchor.points.into_iter().map(Vec3::from_array).collect(),
            depth: anchor.depth,
            eye: Vec3::from_array(anchor.eye),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_meets_a_triangle_at_the_hand_computed_distance() {
        let triangle = [
            Vec3::new(-1.0, -1.0, 2.0),
            Vec3::new(1.0, -1.0, 2.0),
            Vec3::new(0.0, 1.0, 2.0),
        ];
        let t = ray_triangle(Vec3::ZERO, Vec3::new(0.0, 0.0, 0.5), triangle);
        assert_eq!(t, Some(4.0));
        assert_eq!(ray_triangle(Vec3::ZERO, Vec3::X, triangle), None);
        assert_eq!(
            ray_triangle(Vec3::new(5.0, 0.0, 0.0), Vec3::Z, triangle),
            None
        );
    }

    #[test]
    fn ray_meets_the_near_face_of_a_cube() {
        let mesh = Mesh::from(Cuboid::new(1.0, 1.0, 1.0));
        let t = ray_mesh(&mesh, Vec3::new(0.1, 0.2, 3.0), Vec3::NEG_Z).expect("a hit");
        assert!((t - 2.5).abs() < 1e-6, "{t}");
    }
}
