//! Where the simulated head is at each moment: the built-in sway in front of the bench, or a
//! path read from a file (`--path`) as timed waypoints, each an eye position and a point to
//! look at, followed in straight lines and repeated from the start after the last one.

use std::f32::consts::TAU;
use std::path::Path;

use bevy::prelude::*;
use serde::Deserialize;

/// The largest path file read: far more waypoints than any script needs.
pub const MAX_PATH_BYTES: u64 = 1 << 20;

/// The head's scripted motion.
#[derive(Resource, Clone, Debug, PartialEq)]
pub enum HeadPath {
    Sway(Sway),
    Waypoints(Vec<Waypoint>),
}

impl Default for HeadPath {
    fn default() -> Self {
        Self::Sway(Sway::default())
    }
}

/// A slow sway left and right and a smaller bob up and down in front of the bench, always
/// looking at the device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sway {
    /// Centre of the sway, where the head is at time zero.
    pub centre: Vec3,
    /// Half the left-right travel, in metres.
    pub sway: f32,
    pub sway_period_s: f32,
    /// Half the up-down travel, in metres.
    pub bob: f32,
    pub bob_period_s: f32,
    pub look_at: Vec3,
}

impl Default for Sway {
    fn default() -> Self {
        Self {
            centre: Vec3::new(0.0, 1.2, 0.6),
            sway: 0.3,
            sway_period_s: 8.0,
            bob: 0.05,
            bob_period_s: 5.0,
            look_at: crate::workbench::DEVICE_CENTRE,
        }
    }
}

/// One point of a path file: at `at_s` seconds the eye is at `eye`, looking at `look_at`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waypoint {
    pub at_s: f32,
    pub eye: [f32; 3],
    pub look_at: [f32; 3],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    waypoints: Vec<Waypoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes; a path file may have at most {MAX_PATH_BYTES}")]
    TooLarge { path: String, size: u64 },
    #[error(
        "not a path file: {0} (expected {{\"waypoints\": [{{\"at_s\", \"eye\", \"look_at\"}}]}})"
    )]
    Json(#[from] serde_json::Error),
    #[error("a path needs at least one waypoint")]
    Empty,
    #[error("waypoint {index}: at_s {at_s} is not after the waypoint before it")]
    NotIncreasing { index: usize, at_s: f32 },
    #[error("waypoint {index}: a number is not finite")]
    NotFinite { index: usize },
    #[error("waypoint {index}: the eye is where it looks")]
    LooksAtItself { index: usize },
}

impl HeadPath {
    /// Reads a path file (see [`HeadPath::from_json`]).
    pub fn read(path: &Path) -> Result<Self, PathError> {
        let read = |source| PathError::Read {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_PATH_BYTES {
            return Err(PathError::TooLarge {
                path: path.display().to_string(),
                size,
            });
        }
        Self::from_json(&std::fs::read_to_string(path).map_err(read)?)
    }

    /// `{"waypoints": [{"at_s": 0, "eye": [x, y, z], "look_at": [x, y, z]}, …]}`, times
    /// increasing; one waypoint holds the head still there.
    pub fn from_json(json: &str) -> Result<Self, PathError> {
        let file: PathFile = serde_json::from_str(json)?;
        if file.waypoints.is_empty() {
            return Err(PathError::Empty);
        }
        for (index, w) in file.waypoints.iter().enumerate() {
            let numbers = std::iter::once(w.at_s).chain(w.eye).chain(w.look_at);
            if !numbers.into_iter().all(f32::is_finite) {
                return Err(PathError::NotFinite { index });
            }
            if Vec3::from(w.eye).distance(Vec3::from(w.look_at)) < 1e-4 {
                return Err(PathError::LooksAtItself { index });
            }
            if index > 0 && w.at_s <= file.waypoints[index - 1].at_s {
                return Err(PathError::NotIncreasing {
                    index,
                    at_s: w.at_s,
                });
            }
        }
        Ok(Self::Waypoints(file.waypoints))
    }

    pub fn pose_at(&self, seconds: f32) -> Transform {
        match self {
            Self::Sway(sway) => sway.pose_at(seconds),
            Self::Waypoints(points) => along(points, seconds),
        }
    }
}

impl Sway {
    pub fn pose_at(&self, seconds: f32) -> Transform {
        let eye = self.centre
            + Vec3::new(
                self.sway * (TAU * seconds / self.sway_period_s).sin(),
                self.bob * (TAU * seconds / self.bob_period_s).sin(),
                0.0,
            );
        Transform::from_translation(eye).looking_at(self.look_at, Vec3::Y)
    }
}

/// The pose between the waypoints either side of `seconds`, the path repeating after its last
/// waypoint (back to the first in one step of the same length as the path's first one).
fn along(points: &[Waypoint], seconds: f32) -> Transform {
    let look =
        |w: &Waypoint, to: Vec3| Transform::from_translation(w.eye.into()).looking_at(to, Vec3::Y);
    let (first, last) = (points[0], points[points.len() - 1]);
    let span = last.at_s - first.at_s;
    if points.len() == 1 || span <= 0.0 {
        return look(&first, first.look_at.into());
    }
    let t = first.at_s + (seconds - first.at_s).rem_euclid(span);
    let next = points
        .partition_point(|w| w.at_s <= t)
        .min(points.len() - 1);
    let (a, b) = (points[next.saturating_sub(1)], points[next]);
    let f = ((t - a.at_s) / (b.at_s - a.at_s)).clamp(0.0, 1.0);
    let eye = Vec3::from(a.eye).lerp(b.eye.into(), f);
    let look_at = Vec3::from(a.look_at).lerp(b.look_at.into(), f);
    let w = Waypoint {
        at_s: t,
        eye: eye.into(),
        look_at: look_at.into(),
    };
    look(&w, look_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_POINTS: &str = r#"{"waypoints": [
        {"at_s": 0, "eye": [0, 1.2, 0.6], "look_at": [0, 0.84, 0]},
        {"at_s": 4, "eye": [0.4, 1.2, 0.6], "look_at": [0, 0.84, 0]}
    ]}"#;

    #[test]
    fn the_head_moves_in_a_straight_line_between_waypoints_and_repeats() {
        let path = HeadPath::from_json(TWO_POINTS).expect("a valid path");
        let eye = |s: f32| path.pose_at(s).translation;
        assert!(eye(0.0).abs_diff_eq(Vec3::new(0.0, 1.2, 0.6), 1e-5));
        assert!(
            eye(1.0).abs_diff_eq(Vec3::new(0.1, 1.2, 0.6), 1e-5),
            "{}",
            eye(1.0)
        );
        assert!(eye(5.0).abs_diff_eq(eye(1.0), 1e-5), "the path repeats");
        let gaze = path.pose_at(2.0).forward();
        let wanted = (Vec3::new(0.0, 0.84, 0.0) - eye(2.0)).normalize();
        assert!(gaze.abs_diff_eq(wanted, 1e-5), "looking along {gaze}");
    }

    #[test]
    fn one_waypoint_holds_the_head_still() {
        let path = HeadPath::from_json(
            r#"{"waypoints": [{"at_s": 0, "eye": [0.1, 1.1, 0.5], "look_at": [0, 0.8, 0]}]}"#,
        )
        .expect("a valid path");
        assert_eq!(path.pose_at(0.0), path.pose_at(17.3));
    }

    #[test]
    fn bad_path_files_are_refused_with_the_reason() {
        let refused = |json: &str| HeadPath::from_json(json).expect_err("refused").to_string();
        assert!(refused("[]").starts_with("not a path file"));
        assert!(refused(r#"{"waypoints": []}"#).contains("at least one"));
        assert!(
            refused(
                r#"{"waypoints": [
                {"at_s": 1, "eye": [0, 1, 1], "look_at": [0, 0, 0]},
                {"at_s": 1, "eye": [0, 1, 2], "look_at": [0, 0, 0]}]}"#
            )
            .starts_with("waypoint 1: at_s 1 is not after")
        );
        assert!(
            refused(r#"{"waypoints": [{"at_s": 0, "eye": [1, 1, 1], "look_at": [1, 1, 1]}]}"#)
                .contains("the eye is where it looks")
        );
        assert!(
            refused(
                r#"{"waypoints": [{"at_s": 0, "eye": [0, 1, 1], "look_at": [0, 0, 0], "fov": 3}]}"#
            )
            .contains("unknown field")
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = HeadPath::read(Path::new("/nonexistent/path.json")).expect_err("no file");
        assert!(
            err.to_string()
                .starts_with("reading /nonexistent/path.json"),
            "{err}"
        );
    }
}
