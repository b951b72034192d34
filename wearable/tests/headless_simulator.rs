//! Runs the real `farsight-wearable --sim --headless` and checks that the red knob appears in
//! the saved picture exactly where the protocol's `CameraModel`, written beside it, projects
//! the knob's world position: the simulator's renders and the anchoring math agree.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use farsight_protocol::{CameraModel, Intrinsics, Pose};
use image::RgbImage;
use nalgebra::{Point3, Quaternion, UnitQuaternion, Vector3};
use serde_json::Value;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Capture {
    picture: RgbImage,
    camera: CameraModel,
    knob: Point3<f64>,
    log: String,
}

fn wearable(args: &[&str], log: &Path) -> Result<ExitStatus> {
    let out = File::create(log)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_farsight-wearable"))
        .args(args)
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .context("starting farsight-wearable")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill()?;
            child.wait()?;
            bail!("farsight-wearable ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn render_frame(dir: &Path, frames: u32) -> Result<Capture> {
    let png = dir.join(format!("frame-{frames}.png"));
    let log_path = dir.join(format!("frame-{frames}.log"));
    let frames_arg = frames.to_string();
    let (width, height) = (WIDTH.to_string(), HEIGHT.to_string());
    let png_arg = png.to_str().context("temporary path is not UTF-8")?;
    let status = wearable(
        &[
            "--sim",
            "--headless",
            "--frames",
            &frames_arg,
            "--screenshot",
            png_arg,
            "--width",
            &width,
            "--height",
            &height,
        ],
        &log_path,
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.with_context(|| format!("log:\n{log}"))?;
    if !status.success() {
        bail!(
            "the simulator could not render headless ({status}); it needs a Vulkan driver \
             (Debian: mesa-vulkan-drivers for lavapipe). Its log:\n{log}"
        );
    }
    let picture = image::open(&png)
        .with_context(|| format!("reading {}; log:\n{log}", png.display()))?
        .to_rgb8();
    let json_path: PathBuf = png.with_extension("json");
    let record: Value = serde_json::from_slice(
        &std::fs::read(&json_path).with_context(|| format!("reading {}", json_path.display()))?,
    )?;
    Ok(Capture {
        picture,
        camera: camera_from_json(&record["camera"])?,
        knob: point(&record["knob"])?,
        log,
    })
}

fn number(value: &Value) -> Result<f64> {
    value
        .as_f64()
        .with_context(|| format!("{value} is not a number"))
}

fn numbers<const N: usize>(value: &Value) -> Result<[f64; N]> {
    let items = value.as_array().context("not an array")?;
    if items.len() != N {
        bail!("{value} does not hold {N} numbers");
    }
    let mut out = [0.0; N];
    for (o, v) in out.iter_mut().zip(items) {
        *o = number(v)?;
    }
    Ok(out)
}

fn point(value: &Value) -> Result<Point3<f64>> {
    let [x, y, z] = numbers(value)?;
    Ok(Point3::new(x, y, z))
}

fn camera_from_json(camera: &Value) -> Result<CameraModel> {
    let [tx, ty, tz] = numbers(&camera["pose"]["t"])?;
    let [qx, qy, qz, qw] = numbers(&camera["pose"]["q"])?;
    let size = |key: &str| -> Result<u32> {
        Ok(u32::try_from(
            camera[key].as_u64().context("not an integer")?,
        )?)
    };
    Ok(CameraModel {
        pose: Pose::new(
            Vector3::new(tx, ty, tz),
            UnitQuaternion::from_quaternion(Quaternion::new(qw, qx, qy, qz)),
        ),
        intrinsics: Intrinsics {
            fx: number(&camera["fx"])?,
            fy: number(&camera["fy"])?,
            cx: number(&camera["cx"])?,
            cy: number(&camera["cy"])?,
            width: size("width")?,
            height: size("height")?,
        },
    })
}

fn is_red([r, g, b]: [u8; 3]) -> bool {
    r >= 120 && g <= 80 && b <= 80 && u16::from(r) > 2 * u16::from(g.max(b))
}

/// Checks the knob's neighbourhood in one captured frame.
fn assert_knob_is_where_projected(capture: &Capture) {
    let Capture {
        picture,
        camera,
        knob,
        log,
    } = capture;
    assert_eq!(
        (picture.width(), picture.height()),
        (camera.intrinsics.width, camera.intrinsics.height),
        "the picture and its camera model disagree on the size"
    );
    let at = camera
        .project(knob)
        .unwrap_or_else(|| panic!("the knob {knob} is behind the camera {camera:?}"));
    let (x, y) = (at.x.floor() as i64, at.y.floor() as i64);
    for dy in -3..=3 {
        for dx in -3..=3 {
            let (px, py) = (x + dx, y + dy);
            assert!(
                (0..i64::from(picture.width())).contains(&px)
                    && (0..i64::from(picture.height())).contains(&py),
                "the knob projects to ({}, {}), outside the picture",
                at.x,
                at.y
            );
            let pixel = picture.get_pixel(px as u32, py as u32).0;
            assert!(
                is_red(pixel),
                "pixel ({px}, {py}) near the knob's projection ({:.1}, {:.1}) is {pixel:?}, \
                 not red; log:\n{log}",
                at.x,
                at.y
            );
        }
    }
    // Far from the device — the corners show the floor, the wall colour and the table — nothing
    // is red, and red covers only a small part of the picture.
    let (w, h) = (picture.width(), picture.height());
    for (px, py) in [(4, 4), (w - 5, 4), (4, h - 5), (w - 5, h - 5)] {
        let pixel = picture.get_pixel(px, py).0;
        assert!(
            !is_red(pixel),
            "corner pixel ({px}, {py}) is red: {pixel:?}"
        );
    }
    let red = picture.pixels().filter(|p| is_red(p.0)).count();
    assert!(
        red < (w * h / 20) as usize,
        "{red} of {} pixels are red: the picture is not the workbench",
        w * h
    );
}

#[test]
fn knob_renders_where_the_camera_model_projects_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let first = render_frame(dir.path(), 1)?;
    let later = render_frame(dir.path(), 75)?;
    assert_knob_is_where_projected(&first);
    assert_knob_is_where_projected(&later);
    // 2.5 s later the head has swayed sideways, and the knob is still red where the recorded
    // camera says it is.
    let moved = (first.camera.pose.translation - later.camera.pose.translation).norm();
    assert!(
        moved > 0.2,
        "the head moved only {moved:.3} m between frames 1 and 75"
    );
    Ok(())
}

#[test]
fn command_lines_that_cannot_work_are_refused_with_the_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("never.png");
    let png = png.to_str().context("a UTF-8 temporary path")?;
    let one_frame = ["--headless", "--frames", "1", "--screenshot", png];
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec![
                "--sim",
                "--headless",
                "--server",
                "127.0.0.1:4433",
                "--token",
                "t",
                "--ca",
                "/nonexistent/ca.pem",
            ],
            "CA certificates in /nonexistent/ca.pem",
        ),
        (
            [&["--sim", "--camera", "test"][..], &one_frame].concat(),
            "two sources",
        ),
        (one_frame.to_vec(), "nothing to show"),
        (
            [&["--camera", "test", "--path", "p.json"][..], &one_frame].concat(),
            "--path moves the simulated head",
        ),
        (
            [
                &["--sim", "--path", "/nonexistent/path.json"][..],
                &one_frame,
            ]
            .concat(),
            "reading /nonexistent/path.json",
        ),
    ];
    for (args, reason) in cases {
        let log = dir.path().join("refused.log");
        let status = wearable(&args, &log)?;
        let said = std::fs::read_to_string(&log)?;
        assert!(!status.success(), "{args:?} succeeded");
        assert!(said.contains(reason), "{args:?} said: {said}");
    }
    Ok(())
}

#[test]
fn a_window_without_a_display_is_refused_with_what_to_do() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("refused.log");
    let out = File::create(&log)?;
    let status = Command::new(env!("CARGO_BIN_EXE_farsight-wearable"))
        .arg("--sim")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()?;
    let said = std::fs::read_to_string(&log)?;
    assert!(!status.success(), "a window opened with no display");
    assert!(
        said.contains("no display") && said.contains("--headless"),
        "it said: {said}"
    );
    Ok(())
}
