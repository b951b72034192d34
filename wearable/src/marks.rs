//! Agents' marks drawn in the scene at their anchored world points, so they stay on the
//! object as the head moves: arrows as a shaft and a head, circles as a ring facing the camera
//! of the frame they were drawn on, ink as a tube along the stroke, a text label's anchor as a
//! pin. `Erase` removes one mark, `Clear` all of them.

use bevy::prelude::*;
use farsight_protocol::{AnnotationId, AnnotationKind, ControlMessage};

use crate::anchor::MarkAnchored;
use crate::link::LinkEvent;

/// Metres of tube radius per point of stroke width.
const RADIUS_PER_POINT: f32 = 0.0005;
const MIN_RADIUS: f32 = 0.001;
const MAX_RADIUS: f32 = 0.01;

#[derive(Debug)]
pub struct MarksPlugin;

impl Plugin for MarksPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<MarkAnchored>()
            .add_message::<LinkEvent>()
            .add_systems(Update, (draw_marks, erase_marks).chain());
    }
}

/// One agent's mark in the scene; its parts are its children.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(pub AnnotationId);

/// A mesh of a drawn mark: not part of the scene that depth is measured in.
#[derive(Component, Debug, Default)]
pub struct MarkPart;

pub(crate) fn draw_marks(
    mut commands: Commands,
    mut anchored: MessageReader<MarkAnchored>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    existing: Query<(Entity, &Mark)>,
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
        let material = materials.add(StandardMaterial {
            base_color: Color::srgba_u8(r, g, b, a),
            unlit: true,
            ..default()
        });
        let radius = (mark.style.width * RADIUS_PER_POINT).clamp(MIN_RADIUS, MAX_RADIUS);
        let parts = parts(mark.kind, points, *eye, radius);
        commands
            .spawn((
                Name::new(format!("mark {}", mark.id)),
                Mark(mark.id),
                Transform::IDENTITY,
                Visibility::Visible,
            ))
            .with_children(|parent| {
                for (shape, transform) in parts {
                    parent.spawn((
                        MarkPart,
                        Mesh3d(meshes.add(shape)),
                        MeshMaterial3d(material.clone()),
                        transform,
                    ));
                }
            });
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

/// The meshes of a mark and where each goes, in world space.
fn parts(kind: AnnotationKind, points: &[Vec3], eye: Vec3, radius: f32) -> Vec<(Mesh, Transform)> {
    match (kind, points) {
        (AnnotationKind::Arrow, [tail, head, ..]) => arrow(*tail, *head, radius),
        (AnnotationKind::Circle, [centre, rim, ..]) => {
            let facing = (eye - *centre).try_normalize().unwrap_or(Vec3::Z);
            let ring = centre.distance(*rim).max(2.0 * radius);
            vec![(
                Torus::new(ring - radius, ring + radius).into(),
                Transform::from_translation(*centre)
                    .with_rotation(Quat::from_rotation_arc(Vec3::Y, facing)),
            )]
        }
        (AnnotationKind::Ink, [_, _, ..]) => points
            .windows(2)
            .filter_map(|pair| segment(pair[0], pair[1], radius))
            .collect(),
        (_, [point, ..]) => vec![(
            Sphere::new(3.0 * radius).into(),
            Transform::from_translation(*point),
        )],
        (_, []) => Vec::new(),
    }
}

/// A shaft from `tail` to the base of a cone whose tip is at `head`.
fn arrow(tail: Vec3, head: Vec3, radius: f32) -> Vec<(Mesh, Transform)> {
    let Some(along) = (head - tail).try_normalize() else {
        return vec![(
            Sphere::new(3.0 * radius).into(),
            Transform::from_translation(head),
        )];
    };
    let cone_height = (8.0 * radius).min(tail.distance(head));
    let base = head - along * cone_height;
    let mut parts: Vec<_> = segment(tail, base, radius).into_iter().collect();
    parts.push((
        Cone {
            radius: 3.0 * radius,
            height: cone_height,
        }
        .into(),
        Transform::from_translation(head - along * cone_height / 2.0)
            .with_rotation(Quat::from_rotation_arc(Vec3::Y, along)),
    ));
    parts
}

/// A tube of `radius` from `a` to `b`, or nothing when they coincide.
fn segment(a: Vec3, b: Vec3, radius: f32) -> Option<(Mesh, Transform)> {
    let along = (b - a).try_normalize()?;
    Some((
        Cylinder::new(radius, a.distance(b)).into(),
        Transform::from_translation((a + b) / 2.0)
            .with_rotation(Quat::from_rotation_arc(Vec3::Y, along)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farsight_protocol::SessionId;

    #[test]
    fn every_kind_gets_its_parts() {
        let (a, b, c) = (
            Vec3::ZERO,
            Vec3::new(0.1, 0.0, 0.0),
            Vec3::new(0.1, 0.1, 0.0),
        );
        let eye = Vec3::new(0.0, 0.0, 1.0);
        assert_eq!(parts(AnnotationKind::Arrow, &[a, b], eye, 0.002).len(), 2);
        assert_eq!(parts(AnnotationKind::Circle, &[a, b], eye, 0.002).len(), 1);
        assert_eq!(parts(AnnotationKind::Ink, &[a, b, c], eye, 0.002).len(), 2);
        assert_eq!(parts(AnnotationKind::Text, &[a], eye, 0.002).len(), 1);
        assert!(parts(AnnotationKind::Ink, &[], eye, 0.002).is_empty());
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
        .init_asset::<Mesh>()
        .init_asset::<StandardMaterial>();
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
        assert_eq!(parts, 6, "a shaft and a head for each arrow");

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
        let parts = parts(
            AnnotationKind::Circle,
            &[Vec3::ZERO, Vec3::new(0.05, 0.0, 0.0)],
            eye,
            0.002,
        );
        let (_, transform) = &parts[0];
        // The torus's axis (its local Y) points at the eye.
        assert!((transform.rotation * Vec3::Y).distance(Vec3::Z) < 1e-5);
    }
}
