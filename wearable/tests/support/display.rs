//! A virtual X display (Xvfb) for the simulator's window, and screenshots of a window on it
//! taken by the X server (`xwd`), so a test sees what the window shows, not what the app
//! believes it drew; keys pressed through the X server's test extension (`xdotool`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use image::RgbImage;

/// An Xvfb server, stopped on drop.
pub struct Display {
    pub name: String,
    server: Child,
}

impl Display {
    pub fn start(width: u32, height: u32) -> Result<Self> {
        // Xvfb picks a free display number itself and writes it once it accepts clients, so
        // tests running side by side never share a display.
        let mut server = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb (Debian package xvfb)")?;
        let stdout = server.stdout.take().context("Xvfb's output")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let number: u32 = match line.trim().parse() {
            Ok(number) => number,
            Err(_) => {
                let _ = server.kill();
                bail!("Xvfb did not start (it said {line:?})");
            }
        };
        Ok(Self {
            name: format!(":{number}"),
            server,
        })
    }

    /// Gives the keyboard to the window whose title starts with `title`, as a click on it
    /// would.
    pub fn focus(&self, title: &str) -> Result<()> {
        let pattern = format!("^{}", regex_escape(title));
        self.xdotool(&[
            "search",
            "--sync",
            "--name",
            &pattern,
            "windowfocus",
            "--sync",
        ])
    }

    /// Runs `xdotool` on this display: `keydown w`, `key p`, …
    pub fn xdotool(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.name)
            .output()
            .context("running xdotool (Debian package xdotool)")?;
        ensure!(
            out.status.success(),
            "xdotool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The window called `title`, as the X server has it now.
    pub fn screenshot(&self, title: &str) -> Result<RgbImage> {
        let out = Command::new("xwd")
            .args(["-silent", "-display", &self.name, "-name", title])
            .output()
            .context("running xwd (Debian package x11-apps)")?;
        ensure!(
            out.status.success(),
            "xwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        decode_xwd(&out.stdout)
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// A true-colour XWD image (X11's window dump), 32 bits per pixel, as RGB.
pub fn decode_xwd(bytes: &[u8]) -> Result<RgbImage> {
    let field = |i: usize| -> Result<u32> {
        let b = bytes
            .get(i * 4..i * 4 + 4)
            .context("the XWD header is cut short")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let header_size = field(0)? as usize;
    let (width, height) = (field(4)?, field(5)?);
    let little_endian = field(7)? == 0;
    let bits_per_pixel = field(11)?;
    let bytes_per_line = field(12)? as usize;
    let masks = [field(14)?, field(15)?, field(16)?];
    let colours = field(19)? as usize;
    if bits_per_pixel != 32 {
        bail!("XWD with {bits_per_pixel} bits per pixel; only 32 is read");
    }
    let pixels = bytes
        .get(header_size + colours * 12..)
        .context("the XWD colour map is cut short")?;
    ensure!(
        pixels.len() >= bytes_per_line * height as usize,
        "the XWD pixels are cut short"
    );
    let channel = |value: u32, mask: u32| ((value & mask) >> mask.trailing_zeros()) as u8;
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let at = y as usize * bytes_per_line + x as usize * 4;
        let raw = [pixels[at], pixels[at + 1], pixels[at + 2], pixels[at + 3]];
        let value = if little_endian {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        };
        image::Rgb(masks.map(|mask| channel(value, mask)))
    }))
}
