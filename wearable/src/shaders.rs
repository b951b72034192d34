//! The WGSL in the top-level `shaders/`, embedded in the binary so it runs from any
//! directory, each registered under a fixed handle together with the material that uses it.

use std::hash::Hash;

use bevy::prelude::*;
use bevy::render::RenderApp;
use bevy::shader::Shader;

/// Registers `wgsl` (its `path` names it in errors) under `handle`, and material `M` drawn
/// with it. Without a renderer (unit tests) the material is still an asset, so marks and
/// backgrounds are spawned as they would be.
pub fn add_material<M: Material>(
    app: &mut App,
    handle: &Handle<Shader>,
    wgsl: &'static str,
    path: &'static str,
) where
    M::Data: PartialEq + Eq + Hash + Clone,
{
    if let Some(mut shaders) = app.world_mut().get_resource_mut::<Assets<Shader>>() {
        shaders
            .insert(handle.id(), Shader::from_wgsl(wgsl, path))
            .expect("a UUID handle always takes an asset");
    }
    if app.get_sub_app(RenderApp).is_some() {
        app.add_plugins(MaterialPlugin::<M>::default());
    } else {
        app.init_asset::<M>();
    }
}
