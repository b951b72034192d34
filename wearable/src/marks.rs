//! Agents' marks drawn in the scene at their anchored world points, so they stay on the
//! object as the head moves: arrows as a shaft and a head, circles as a ring facing the camera
//! of the frame they were drawn on, ink as the stroke's segments, a text label's anchor as a
//! dot with the label's text beside it in the wearer's view. Strokes keep their width on
//! screen (see `stroke`). Marks are drawn for the wearer only (`MARKS_LAYER`), never into the
//! stream. `Erase` removes one mark, `Clear` all of them.

use std::f32::consts::TAU;

use bevy::camera::visibility::{NoFrustumCulling, RenderLayers};
use bevy::prelude::*;
use bevy::ui::UiSystems;
use farsight_protocol::{AnnotationId, AnnotationKind, ControlMessage};

use crate::anchor::{AnchorMarks, MarkAnchored, NotInWorld};
use crate::link::LinkEvent;
use crate::simulator::Head;
use crate::stroke::{StrokeMaterial, StrokePlugin, stroke_mesh};
use crate::view::{MARKS_LAYER, WearerView};

/// Pixels of stroke width per point of the agent's pen width.
const PX_PER_POINT: f32 = 1.0;
const MIN_WIDTH_PX: f32 = 2.0;
const MAX_WIDTH_PX: f32 = 24.0;
/// A label's anchor is a dot this many stroke widths across.
const PIN_WIDTHS: f32 = 3.0;
/// Segments of a circle's ring.
const RING_SEGMENTS: usize = 48;
/// A label's text sits this far right of and above its anchor, in logical pixels, so the
/// pin stays visible.
const LABEL_OFFSET: Vec2 = Vec2::new(10.0, -30.0);
const LABEL_FONT_PX: f32 = 18.0;

#[derive(Debug)]
pub struct MarksPlugin;

impl Plugin for MarksPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(StrokePlugin)
            .add_message::<MarkAnchored>()
            .add_message::<LinkEvent>()
            // A mark is drawn in the frame it is anchored, before an `Erase` read with it.
            .add_systems(Update, (draw_marks, erase_marks).chain().after(AnchorMarks))
            .add_systems(PostUpdate, place_labels.before(UiSystems::Layout));
    }
}

/// One agent's mark in the scene; its parts are its children.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(pub AnnotationId);

/// A mesh of a drawn mark: not part of the scene that depth is measured in.
#[derive(Component, Debug, Default)]
#[require(NotInWorld)]
pub struct MarkPart;

/// A text label's words in the wearer's view, kept beside the anchor's projection. It carries
/// its `Mark` too, so erasing the mark removes it.
#[derive(Component, Debug, Clone, Copy)]
pub struct MarkLabel {
    pub anchor: Vec3,
}

pub(crate) fn draw_marks(
    mut commands: Commands,
    mut anchored: MessageReader<MarkAnchored>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StrokeMaterial>>,
    existing: Query<(Entity, &Mark)>,
    view: Option<Single<Entity, With<WearerView>>>,
) {
    for MarkAnchored {
        mark, points, eye, ..
    } in anchored.read()
    {
        // A mark sent again replaces the one drawn.
        for (entity, _) in existing.iter().filter(|(_, m)| m.0 == mark.id) {
            commands.entity(entity).despawn();
        }
        let [r, g, b, a] = mark.style.rgba.to_be_bytes();
        let color = Color::srgba_u8(r, g, b, a);
        let mut width = (mark.style.width * PX_PER_POINT).clamp(MIN_WIDTH_PX, MAX_WIDTH_PX);
        if mark.kind == AnnotationKind::Text {
            width *= PIN_WIDTHS;
        }
        let segments = segments(mark.kind, points, *eye);
        if segments.is_empty() {
            continue;
        }
        let mesh = meshes.add(stroke_mesh(&segments));
        commands
            .spawn((
                Name::new(format!("mark {}", mark.id)),
                Mark(mark.id),
                Transform::IDENTITY,
                Visibility::Visible,
            ))
            .with_children(|parent| {
                for behind in [false, true] {
                    parent.spawn((
                        MarkPart,
                        Mesh3d(mesh.clone()),
                        MeshMaterial3d(materials.add(StrokeMaterial::new(color, width, behind))),
                        // The mesh's bounds are its centre lines; the GPU widens them.
                        NoFrustumCulling,
                        RenderLayers::layer(MARKS_LAYER),
                    ));
                }
            });
        if let (AnnotationKind::Text, Some(view), Some(anchor)) =
            (mark.kind, view.as_deref(), points.first())
            && !mark.text.is_empty()
        {
            commands.spawn((
                Name::new(format!("label {}", mark.id)),
                Mark(mark.id),
                MarkLabel { anchor: *anchor },
                UiTargetCamera(*view),
                Node {
                    position_type: PositionType::Absolute,
                    padding: UiRect::axes(Val::Px(6.0), Val::Px(2.0)),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.65)),
                Text::new(mark.text.clone()),
                TextFont::from_font_size(LABEL_FONT_PX),
                // White on dark reads on any background; the pin carries the mark's colour.
                TextColor(Color::WHITE),
                // Hidden until placed, so it never flashes in the corner.
                Visibility::Hidden,
            ));
        }
    }
}

/// Keeps each label beside its anchor as the head moves; hides it when the anchor is behind.
fn place_labels(
    view: Option<Single<&Camera, With<WearerView>>>,
    head: Option<Single<&Transform, With<Head>>>,
    mut labels: Query<(&MarkLabel, &mut Node, &mut Visibility)>,
) {
    let (Some(camera), Some(head)) = (view, head) else {
        return;
    };
    // The view rides on the head with no offset of its own.
    let eye = GlobalTransform::from(**head);
    for (label, mut node, mut visibility) in &mut labels {
        match camera.world_to_viewport(&eye, label.anchor) {
            Ok(at) => {
                let at = at + LABEL_OFFSET;
                node.left = Val::Px(at.x);
                node.top = Val::Px(at.y);
                *visibility = Visibility::Inherited;
            }
            Err(_) => *visibility = Visibility::Hidden,
        }
    }
}

fn erase_marks(
    mut commands: Commands,
    mut events: MessageReader<LinkEvent>,
    marks: Query<(Entity, &Mark)>,
) {
    for event in events.read() {
        match event {
            LinkEvent::Agent(ControlMessage::Erase { id, .. }) => {
                for (entity, _) in marks.iter().filter(|(_, m)| m.0 == *id) {
                    commands.entity(entity).despawn();
                }
            }
            LinkEvent::Agent(ControlMessage::Clear { .. }) => {
                for (entity, _) in &marks {
                    commands.entity(entity).despawn();
                }
            }
            _ => {}
        }
    }
}

/// The segments a mark is drawn as, in world space.
fn segments(kind: AnnotationKind, points: &[Vec3], eye: Vec3) -> Vec<(Vec3, Vec3)> {
    match (kind, points) {
        (AnnotationKind::Arrow, [tail, head, ..]) => arrow(*tail, *head, eye),
        (AnnotationKind::Circle, [centre, rim, ..]) => {
            let facing = (eye - *centre).try_normalize().unwrap_or(Vec3::Z);
            let radius = centre.distance(*rim);
            let rotation = Quat::from_rotation_arc(Vec3::Z, facing);
            let at = |i: usize| {
                let angle = TAU * i as f32 / RING_SEGMENTS as f32;
                *centre + rotation * Vec3::new(angle.cos(), angle.sin(), 0.0) * radius
            };
            (0..RING_SEGMENTS).map(|i| (at(i), at(i + 1))).collect()
        }
        (AnnotationKind::Ink, [_, _, ..]) => {
            points.windows(2).map(|pair| (pair[0], pair[1])).collect()
        }
        (_, [point, ..]) => vec![(*point, *point)],
        (_, []) => Vec::new(),
    }
}

/// A shaft from `tail` to `head` and two barbs back from `head`, in the plane that faces the
/// eye.
fn arrow(tail: Vec3, head: Vec3, eye: Vec3) -> Vec<(Vec3, Vec3)> {
    let Some(back) = (tail - head).try_normalize() else {
        return vec![(head, head)];
    };
    let side = back
        .cross(eye - head)
        .try_normalize()
        .unwrap_or(back.any_orthonormal_vector());
    let barb = 0.3 * tail.distance(head);
    let (along, across) = (back * barb * 0.87, side * barb * 0.5);
    vec![
        (tail, head),
        (head, head + along + across),
        (head, head + along - across),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use farsight_protocol::SessionId;

    #[test]
    fn every_kind_gets_its_segments() {
        let (a, b, c) = (
            Vec3::ZERO,
            Vec3::new(0.1, 0.0, 0.0),
            Vec3::new(0.1, 0.1, 0.0),
        );
        let eye = Vec3::new(0.0, 0.0, 1.0);
        assert_eq!(segments(AnnotationKind::Arrow, &[a, b], eye).len(), 3);
        assert_eq!(
            segments(AnnotationKind::Circle, &[a, b], eye).len(),
            RING_SEGMENTS
        );
        assert_eq!(segments(AnnotationKind::Ink, &[a, b, c], eye).len(), 2);
        assert_eq!(segments(AnnotationKind::Text, &[a], eye), [(a, a)]);
        assert!(segments(AnnotationKind::Ink, &[], eye).is_empty());
    }

    fn anchored(id: u64) -> MarkAnchored {
        MarkAnchored {
            mark: farsight_protocol::Annotate {
                session: SessionId(1),
                id: AnnotationId(id),
                author: farsight_protocol::ParticipantId(2),
                kind: AnnotationKind::Arrow,
                frame: farsight_protocol::FrameSeq(0),
                points: vec![[0.4, 0.4], [0.5, 0.5]],
                style: farsight_protocol::Style::default(),
                text: String::new(),
            },
            points: vec![Vec3::ZERO, Vec3::new(0.1, 0.0, 0.0)],
            depth: farsight_protocol::control::DepthSource::Measured,
            eye: Vec3::Z,
        }
    }

    fn drawn(app: &mut App) -> Vec<u64> {
        let mut ids: Vec<u64> = app
            .world_mut()
            .query::<&Mark>()
            .iter(app.world())
            .map(|m| m.0.0)
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn erase_removes_one_mark_and_clear_the_rest() {
        let mut app = App::new();
        app.add_plugins((
            MinimalPlugins,
            bevy::asset::AssetPlugin::default(),
            MarksPlugin,
        ))
        .init_asset::<Mesh>();
        for id in 1..=3 {
            app.world_mut().write_message(anchored(id));
        }
        app.update();
        assert_eq!(drawn(&mut app), [1, 2, 3]);
        let parts = app
            .world_mut()
            .query_filtered::<(), With<MarkPart>>()
            .iter(app.world())
            .count();
        assert_eq!(parts, 6, "each arrow drawn, and hinted where hidden");

        let session = SessionId(1);
        app.world_mut()
            .write_message(LinkEvent::Agent(ControlMessage::Erase {
                session,
                id: AnnotationId(2),
            }));
        app.update();
        assert_eq!(drawn(&mut app), [1, 3]);

        app.world_mut()
            .write_message(LinkEvent::Agent(ControlMessage::Clear { session }));
        app.update();
        assert!(drawn(&mut app).is_empty());
        let parts = app
            .world_mut()
            .query_filtered::<(), With<MarkPart>>()
            .iter(app.world())
            .count();
        assert_eq!(parts, 0, "the parts go with their marks");
    }

    #[test]
    fn circle_faces_the_camera_it_was_drawn_from() {
        let eye = Vec3::new(0.0, 0.0, 1.0);
        let ring = segments(
            AnnotationKind::Circle,
            &[Vec3::ZERO, Vec3::new(0.05, 0.0, 0.0)],
            eye,
        );
        // Every point of the ring is on the circle, in the plane facing the eye.
        for (a, _) in ring {
            assert!((a.length() - 0.05).abs() < 1e-5, "{a} is off the ring");
            assert!(a.z.abs() < 1e-5, "{a} is out of the plane facing the eye");
        }
    }

    #[test]
    fn arrow_barbs_meet_at_the_head() {
        let head = Vec3::new(0.1, 0.0, 0.0);
        let arrow = segments(AnnotationKind::Arrow, &[Vec3::ZERO, head], Vec3::Z);
        for (from, to) in &arrow[1..] {
            assert_eq!(*from, head);
            assert!(to.x < head.x && to.z.abs() < 1e-6, "barb to {to}");
        }
    }
}
