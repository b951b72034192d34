//! The resolution ladder: which picture size and frame rate the encoder sends for the bit rate
//! the relay hints. Steps down through 720p, 480p and 360p, halves the frame rate last, and
//! climbs back only when the hint clears the next rung's need by a margin. No IO.

/// Frames per second a full-rate rung sends: the rate the simulator renders at.
pub const FULL_FPS: u32 = 30;

/// The frame rate of the last rung, when even the smallest picture is too much at full rate.
pub const CUT_FPS: u32 = 15;

/// Picture heights below the source's, largest first.
const HEIGHTS: [u32; 3] = [720, 480, 360];

/// Bits per pixel the encoder needs for a picture worth watching (x264, low latency, a
/// workbench that moves with the head).
const BITS_PER_PIXEL: f64 = 0.06;

/// How far a hint must clear a higher rung's need before the ladder climbs to it, so a hint
/// hovering at a threshold does not flap between two sizes, each switch costing a key frame.
const CLIMB_MARGIN: f64 = 1.25;

/// Above this many times its need a rung gains little from more bits.
const CEILING: u64 = 3;

/// One step of the ladder: the encoded picture and the bit rate it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rung {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub needs_bits_per_second: u64,
}

impl Rung {
    fn new(width: u32, height: u32, fps: u32) -> Self {
        let pixels_per_second = f64::from(width) * f64::from(height) * f64::from(fps);
        Self {
            width,
            height,
            fps,
            needs_bits_per_second: (pixels_per_second * BITS_PER_PIXEL) as u64,
        }
    }

    /// The bit rate to give the encoder on this rung for a hint: the hint, but no more than
    /// this picture can use.
    pub fn bitrate_for(&self, hint_bits_per_second: u64) -> u64 {
        hint_bits_per_second.min(self.needs_bits_per_second * CEILING)
    }
}

#[derive(Clone, Debug)]
pub struct Ladder {
    /// Largest first; the last is the smallest picture at the cut frame rate.
    rungs: Vec<Rung>,
    current: usize,
}

impl Ladder {
    /// The ladder for a `(width, height)` source, starting on its top rung: the source's own
    /// size, then each ladder height below it with the source's aspect, then the smallest at
    /// half rate. No rung is larger than the source.
    pub fn new(source: (u32, u32)) -> Self {
        let (width, height) = (source.0.max(1), source.1.max(1));
        let mut rungs = vec![Rung::new(width, height, FULL_FPS)];
        for h in HEIGHTS.into_iter().filter(|&h| h < height) {
            let w = even(f64::from(h) * f64::from(width) / f64::from(height));
            rungs.push(Rung::new(w, h, FULL_FPS));
        }
        let smallest = *rungs.last().expect("the source's rung is there");
        rungs.push(Rung::new(smallest.width, smallest.height, CUT_FPS));
        Self { rungs, current: 0 }
    }

    pub fn current(&self) -> Rung {
        self.rungs[self.current]
    }

    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// Takes the relay's hint; returns the new rung when the encoder should change. Goes down
    /// to the largest rung the hint pays for (the bottom one when none is), and up to the
    /// largest whose need the hint clears by the margin.
    pub fn on_hint(&mut self, bits_per_second: u64) -> Option<Rung> {
        let hint = bits_per_second as f64;
        let pays_for = |rung: &Rung| rung.needs_bits_per_second as f64 <= hint;
        let climbs_to = |rung: &Rung| rung.needs_bits_per_second as f64 * CLIMB_MARGIN <= hint;
        let next = if !pays_for(&self.rungs[self.current]) {
            (self.current..self.rungs.len())
                .find(|&i| pays_for(&self.rungs[i]))
                .unwrap_or(self.rungs.len() - 1)
        } else {
            (0..self.current)
                .find(|&i| climbs_to(&self.rungs[i]))
                .unwrap_or(self.current)
        };
        if next == self.current {
            return None;
        }
        self.current = next;
        Some(self.current())
    }
}

/// Nearest even number, at least 2: 4:2:0 pictures have whole chroma samples.
fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32).max(1) * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(ladder: &Ladder) -> Vec<(u32, u32, u32)> {
        ladder
            .rungs()
            .iter()
            .map(|r| (r.width, r.height, r.fps))
            .collect()
    }

    fn need(ladder: &Ladder, height: u32, fps: u32) -> u64 {
        ladder
            .rungs()
            .iter()
            .find(|r| r.height == height && r.fps == fps)
            .expect("the rung exists")
            .needs_bits_per_second
    }

    #[test]
    fn a_720p_source_has_three_sizes_then_half_rate() {
        let ladder = Ladder::new((1280, 720));
        assert_eq!(
            sizes(&ladder),
            [
                (1280, 720, 30),
                (854, 480, 30),
                (640, 360, 30),
                (640, 360, 15)
            ]
        );
        assert_eq!(ladder.current().height, 720);
        let needs: Vec<u64> = ladder
            .rungs()
            .iter()
            .map(|r| r.needs_bits_per_second)
            .collect();
        assert!(needs.windows(2).all(|w| w[0] > w[1]), "{needs:?}");
    }

    #[test]
    fn a_falling_hint_steps_down_one_size_at_a_time_and_cuts_the_frame_rate_last() {
        let mut ladder = Ladder::new((1280, 720));
        let mut seen = Vec::new();
        let top = need(&ladder, 720, 30);
        for bps in (50_000..=top).rev().step_by(10_000) {
            if let Some(rung) = ladder.on_hint(bps) {
                seen.push((rung.height, rung.fps));
            }
        }
        assert_eq!(seen, [(480, 30), (360, 30), (360, 15)]);
        assert_eq!(ladder.on_hint(1), None, "there is nothing below the bottom");
    }

    #[test]
    fn a_collapsing_link_jumps_straight_to_the_bottom() {
        let mut ladder = Ladder::new((1280, 720));
        let rung = ladder.on_hint(100_000).expect("a change");
        assert_eq!((rung.width, rung.height, rung.fps), (640, 360, 15));
    }

    #[test]
    fn a_hint_hovering_at_a_threshold_does_not_flap() {
        let mut ladder = Ladder::new((1280, 720));
        let top = need(&ladder, 720, 30);
        assert_eq!(ladder.on_hint(top - 1).map(|r| r.height), Some(480));
        for bps in [top, top + 1, top - 1, top, top * 6 / 5] {
            assert_eq!(ladder.on_hint(bps), None, "moved at {bps}");
        }
        assert_eq!(ladder.current().height, 480);
        assert_eq!(
            ladder.on_hint(top * 5 / 4 + 1).map(|r| r.height),
            Some(720),
            "a hint clearing the top rung's need by the margin climbs back"
        );
    }

    #[test]
    fn a_recovering_link_climbs_back_to_the_top() {
        let mut ladder = Ladder::new((1280, 720));
        ladder.on_hint(1);
        let mut seen = Vec::new();
        for bps in (100_000..4_000_000).step_by(10_000) {
            if let Some(rung) = ladder.on_hint(bps) {
                seen.push((rung.height, rung.fps));
            }
        }
        assert_eq!(seen, [(360, 30), (480, 30), (720, 30)]);
        let at_360 = need(&ladder, 360, 30);
        let mut ladder = Ladder::new((1280, 720));
        ladder.on_hint(1);
        assert_eq!(ladder.on_hint(at_360), None, "no margin yet");
        assert_eq!(ladder.on_hint(at_360 * 5 / 4 + 1).map(|r| r.fps), Some(30));
    }

    #[test]
    fn a_small_source_is_never_scaled_up() {
        assert_eq!(
            sizes(&Ladder::new((640, 360))),
            [(640, 360, 30), (640, 360, 15)]
        );
        assert_eq!(sizes(&Ladder::new((64, 48))), [(64, 48, 30), (64, 48, 15)]);
        assert_eq!(
            sizes(&Ladder::new((1024, 576))),
            [
                (1024, 576, 30),
                (854, 480, 30),
                (640, 360, 30),
                (640, 360, 15)
            ]
        );
        let mut small = Ladder::new((640, 360));
        assert_eq!(small.on_hint(1).map(|r| r.fps), Some(15));
    }

    #[test]
    fn every_rung_keeps_the_source_aspect_in_even_pixels() {
        for source in [
            (1280, 720),
            (1920, 1080),
            (1440, 1080),
            (1000, 1000),
            (1366, 768),
        ] {
            let aspect = f64::from(source.0) / f64::from(source.1);
            for rung in Ladder::new(source).rungs() {
                assert!(rung.width <= source.0 && rung.height <= source.1);
                if (rung.width, rung.height) != source {
                    assert_eq!((rung.width % 2, rung.height % 2), (0, 0), "{rung:?}");
                }
                let rung_aspect = f64::from(rung.width) / f64::from(rung.height);
                // Within a pixel's width of the exact aspect.
                assert!(
                    (rung_aspect - aspect).abs() * f64::from(rung.height) <= 1.0,
                    "{source:?} -> {rung:?}"
                );
            }
        }
    }

    #[test]
    fn the_bit_rate_given_is_the_hint_up_to_what_the_rung_can_use() {
        let ladder = Ladder::new((1280, 720));
        let rung = ladder.current();
        assert_eq!(rung.bitrate_for(1_000_000), 1_000_000);
        assert_eq!(
            rung.bitrate_for(100_000_000),
            rung.needs_bits_per_second * 3
        );
    }
}
