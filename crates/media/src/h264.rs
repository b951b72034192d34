//! Which H.264 encoder element to use and how to drive it: a hardware one when GStreamer has
//! it (NVIDIA, VA, V4L2 blocks of ARM SoCs), else x264, each with its own names for the same
//! low-latency settings and bit rate.

use gstreamer as gst;
use gstreamer::prelude::*;

/// An H.264 encoder element and how to drive it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H264Element {
    pub name: &'static str,
    pub hardware: bool,
    bitrate: BitrateControl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitrateControl {
    /// A property in kbit/s.
    Kbps(&'static str),
    /// V4L2 drivers take the bit rate, in bit/s, among their `extra-controls`.
    V4l2Controls,
}

pub const X264: H264Element = H264Element {
    name: "x264enc",
    hardware: false,
    bitrate: BitrateControl::Kbps("bitrate"),
};

/// Hardware encoders in order of preference: NVIDIA, VA (Intel, AMD), the older VA-API
/// plugin, then the V4L2 blocks of ARM boards such as glasses' own SoCs.
pub const HARDWARE: [H264Element; 4] = [
    H264Element {
        name: "nvh264enc",
        hardware: true,
        bitrate: BitrateControl::Kbps("bitrate"),
    },
    H264Element {
        name: "vah264enc",
        hardware: true,
        bitrate: BitrateControl::Kbps("bitrate"),
    },
    H264Element {
        name: "vaapih264enc",
        hardware: true,
        bitrate: BitrateControl::Kbps("bitrate"),
    },
    H264Element {
        name: "v4l2h264enc",
        hardware: true,
        bitrate: BitrateControl::V4l2Controls,
    },
];

impl H264Element {
    /// Low-latency settings: no B-frames, a key frame every `keyframe_interval` frames,
    /// constant bit rate. Names differ between elements and versions, so each is applied only
    /// where the element has it.
    pub(crate) fn settings(&self, keyframe_interval: u32) -> Vec<(&'static str, String)> {
        let gop = keyframe_interval.to_string();
        let settings: &[(&str, &str)] = match self.name {
            "x264enc" => &[
                ("tune", "zerolatency"),
                ("speed-preset", "ultrafast"),
                ("key-int-max", &gop),
            ],
            "nvh264enc" => &[
                ("preset", "low-latency-hq"),
                ("tune", "ultra-low-latency"),
                ("zerolatency", "true"),
                ("rc-mode", "cbr"),
                ("bframes", "0"),
                ("gop-size", &gop),
            ],
            "vah264enc" => &[
                ("rate-control", "cbr"),
                ("b-frames", "0"),
                ("key-int-max", &gop),
                ("target-usage", "7"),
            ],
            "vaapih264enc" => &[
                ("rate-control", "cbr"),
                ("max-bframes", "0"),
                ("keyframe-period", &gop),
            ],
            _ => &[],
        };
        settings.iter().map(|&(k, v)| (k, v.to_string())).collect()
    }

    /// Sets the target bit rate, before or while running. V4L2 drivers take the key frame
    /// interval in the same control set, so it is said again with the bit rate.
    pub(crate) fn set_bitrate(
        &self,
        element: &gst::Element,
        bits_per_second: u64,
        keyframe_interval: u32,
    ) {
        let kbps = (bits_per_second / 1000).clamp(100, 50_000);
        match self.bitrate {
            BitrateControl::Kbps(property) => {
                set_from_str(element, property, &kbps.to_string());
            }
            BitrateControl::V4l2Controls => {
                let controls = format!(
                    "controls,video_bitrate={},h264_i_frame_period={keyframe_interval}",
                    kbps * 1000
                );
                set_from_str(element, "extra-controls", &controls);
            }
        }
    }
}

/// The encoder to use: the first hardware one `exists` knows, else x264; `forced` (the
/// `FARSIGHT_ENCODER` variable) set to `x264` skips the hardware.
pub fn choose_h264(exists: impl Fn(&str) -> bool, forced: Option<&str>) -> H264Element {
    if forced.is_some_and(|f| f.eq_ignore_ascii_case("x264") || f == X264.name) {
        return X264;
    }
    HARDWARE
        .into_iter()
        .find(|element| exists(element.name))
        .unwrap_or(X264)
}

/// Sets a property from its textual form when the element has it and the text parses, so an
/// element from another version with other names is still usable.
pub(crate) fn set_from_str(element: &gst::Element, property: &str, value: &str) -> bool {
    let Some(spec) = element.find_property(property) else {
        tracing::debug!(property, "the encoder has no such property");
        return false;
    };
    match gst::glib::Value::deserialize(value, spec.value_type()) {
        Ok(parsed) => {
            element.set_property_from_value(property, &parsed);
            true
        }
        Err(_) => {
            tracing::debug!(property, value, "the encoder does not take this value");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_is_chosen_when_no_hardware_encoder_exists() {
        assert_eq!(choose_h264(|_| false, None), X264);
        assert_eq!(choose_h264(|name| name == "x264enc", None), X264);
    }

    #[test]
    fn a_hardware_encoder_is_preferred_when_the_registry_has_one() {
        let has = |names: &'static [&'static str]| move |name: &str| names.contains(&name);
        assert_eq!(
            choose_h264(has(&["x264enc", "v4l2h264enc", "vah264enc"]), None).name,
            "vah264enc"
        );
        assert_eq!(choose_h264(|_| true, None).name, "nvh264enc");
        assert!(choose_h264(has(&["v4l2h264enc"]), None).hardware);
    }

    #[test]
    fn farsight_encoder_x264_forces_software() {
        assert_eq!(choose_h264(|_| true, Some("x264")), X264);
        assert_eq!(choose_h264(|_| true, Some("x264enc")), X264);
        assert_eq!(choose_h264(|_| true, Some("auto")).name, "nvh264enc");
    }
}
