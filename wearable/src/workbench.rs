//! The simulated workbench: where the table, the device to fix and its parts stand, and the
//! system that builds them. The head path looks at the device and the tests aim at the knob,
//! so the layout is public.

use std::f32::consts::FRAC_PI_2;

use bevy::prelude::*;

/// Where the device's housing sits: its centre, on the table top.
pub const DEVICE_CENTRE: Vec3 = Vec3::new(0.0, 0.84, 0.0);
const HOUSING_SIZE: Vec3 = Vec3::new(0.30, 0.18, 0.16);
const TABLE_TOP_HEIGHT: f32 = 0.75;

/// The red knob's centre in world space: on the housing's front face (+Z, towards the head),
/// left of centre, sticking out by half its depth.
pub const KNOB_POSITION: Vec3 = Vec3::new(-0.07, 0.86, 0.095);
pub const KNOB_RADIUS: f32 = 0.03;
/// How far the knob sticks out along +Z: its front face is at `KNOB_POSITION.z + KNOB_DEPTH / 2`.
pub const KNOB_DEPTH: f32 = 0.03;

/// The part an agent is most likely to point at in tests: a red cylinder.
#[derive(Component, Debug)]
pub struct Knob;

/// The floor, the table and the device on it, in matte materials.
pub fn spawn_workbench(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let mut matte = |color: Color| {
        materials.add(StandardMaterial {
            base_color: color,
            perceptual_roughness: 0.8,
            ..default()
        })
    };
    let floor = matte(Color::srgb(0.25, 0.25, 0.27));
    let wood = matte(Color::srgb(0.45, 0.32, 0.2));
    let device = DeviceColours {
        housing: matte(Color::srgb(0.55, 0.56, 0.58)),
        knob: matte(Color::srgb(0.9, 0.05, 0.03)),
        switch: matte(Color::srgb(0.1, 0.25, 0.85)),
        connector: matte(Color::srgb(0.95, 0.8, 0.1)),
    };
    commands.spawn((
        Name::new("floor"),
        Mesh3d(meshes.add(Plane3d::default().mesh().size(6.0, 6.0))),
        MeshMaterial3d(floor),
    ));
    spawn_table(&mut commands, &mut meshes, wood);
    spawn_device(&mut commands, &mut meshes, device);
}

fn spawn_table(commands: &mut Commands, meshes: &mut Assets<Mesh>, wood: Handle<StandardMaterial>) {
    let top_thickness = 0.04;
    commands.spawn((
        Name::new("table top"),
        Mesh3d(meshes.add(Cuboid::new(1.2, top_thickness, 0.7))),
        MeshMaterial3d(wood.clone()),
        Transform::from_xyz(0.0, TABLE_TOP_HEIGHT - top_thickness / 2.0, 0.0),
    ));
    let leg_height = TABLE_TOP_HEIGHT - top_thickness;
    let leg = meshes.add(Cuboid::new(0.05, leg_height, 0.05));
    for (x, z) in [(-0.55, -0.3), (0.55, -0.3), (-0.55, 0.3), (0.55, 0.3)] {
        commands.spawn((
            Name::new("table leg"),
            Mesh3d(leg.clone()),
            MeshMaterial3d(wood.clone()),
            Transform::from_xyz(x, leg_height / 2.0, z),
        ));
    }
}

struct DeviceColours {
    housing: Handle<StandardMaterial>,
    knob: Handle<StandardMaterial>,
    switch: Handle<StandardMaterial>,
    connector: Handle<StandardMaterial>,
}

/// The device's housing with a knob, a switch and a connector on its front face.
fn spawn_device(commands: &mut Commands, meshes: &mut Assets<Mesh>, colours: DeviceColours) {
    commands.spawn((
        Name::new("housing"),
        Mesh3d(meshes.add(Cuboid::from_size(HOUSING_SIZE))),
        MeshMaterial3d(colours.housing),
        Transform::from_translation(DEVICE_CENTRE),
    ));
    commands.spawn((
        Name::new("knob"),
        Knob,
        // A cylinder's axis is +Y; a quarter turn about X points it out of the front face.
        Mesh3d(meshes.add(Cylinder::new(KNOB_RADIUS, KNOB_DEPTH))),
        MeshMaterial3d(colours.knob),
        Transform::from_translation(KNOB_POSITION).with_rotation(Quat::from_rotation_x(FRAC_PI_2)),
    ));
    commands.spawn((
        Name::new("switch"),
        Mesh3d(meshes.add(Cuboid::new(0.025, 0.05, 0.02))),
        MeshMaterial3d(colours.switch),
        Transform::from_xyz(0.05, 0.87, 0.09),
    ));
    commands.spawn((
        Name::new("connector"),
        Mesh3d(meshes.add(Cuboid::new(0.05, 0.025, 0.03))),
        MeshMaterial3d(colours.connector),
        Transform::from_xyz(0.1, 0.785, 0.095),
    ));
}
