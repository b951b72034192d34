//! A deterministic synthetic usage history for demos, tests and benchmarks: user profiles,
//! then every event in time order, streamed day by day so memory stays O(users × topics).
//!
//! The generative story. Each user has a plan tier, a time zone, an activity level
//! (lognormal) and one to three topics with interest weights; they work mostly in their own
//! office hours, and weekends see about a third of a weekday's activity. On an active day
//! they use features, now and then read docs and rarely hit an API error. The platform ships
//! a new SDK minor every ~3 weeks (patches in between); each user upgrades after a delay of
//! their own (eager, normal or laggard) and reports `sdk_version` at the start and on each
//! upgrade. Behind the events, each (user, topic) pair can fall into a *trouble episode*:
//! a daily hazard that grows with activity, for a week after an upgrade and, on some topics,
//! with SDK lag. An episode first shows as extra doc reading (1–4 days), then a burst of API
//! errors with one dominant code (2–7 days); it ends in a support contact with a probability
//! set by tier, severity and past contacts, usually 2–8 days after it began. About a fifth
//! of contacts come out of the blue. Outreach calls are never generated.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::event::{Event, EventKind, Tier, UserProfile};

pub const TOPICS: [&str; 5] = ["live-streaming", "payments", "maps", "login", "push"];

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulateOptions {
    pub users: usize,
    pub days: u32,
    pub seed: u64,
    /// Midnight UTC of day 0, in milliseconds since the epoch.
    pub start_ms: i64,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: f64 = 3_600_000.0;
/// Latent dynamics run this many days before `start_ms` so that day 0 already has
/// episodes under way and users spread over SDK versions; their events are not emitted.
const BURN_IN_DAYS: i32 = 14;
const SDK_MAJOR: u32 = 3;
/// The newest SDK minor when the burn-in begins.
const FIRST_MINOR: u32 = 12;

/// Per-topic behaviour: how common, how fragile, how much SDK upgrades and lag hurt it.
struct TopicModel {
    popularity: f64,
    /// Daily hazard of a trouble episode for an average user with this as the only topic.
    hazard: f64,
    /// Weight of the post-upgrade bump (1 = the most upgrade-sensitive topic).
    upgrade_sensitivity: f64,
    /// Hazard increase per minor version behind.
    lag_sensitivity: f64,
    codes: &'static [&'static str],
}

const MODELS: [TopicModel; 5] = [
    TopicModel {
        popularity: 0.25,
        hazard: 0.0051,
        upgrade_sensitivity: 1.0,
        lag_sensitivity: 0.20,
        codes: &[
            "LIVE_PUSH_DISCONNECTED",
            "LIVE_PUSH_AUTH_FAILED",
            "LIVE_PLAY_STUTTER",
            "LIVE_ENCODER_INIT_FAILED",
        ],
    },
    TopicModel {
        popularity: 0.20,
        hazard: 0.0038,
        upgrade_sensitivity: 0.6,
        lag_sensitivity: 0.15,
        codes: &[
            "PAY_SIGNATURE_INVALID",
            "PAY_ORDER_TIMEOUT",
            "PAY_CALLBACK_UNREACHABLE",
        ],
    },
    TopicModel {
        popularity: 0.15,
        hazard: 0.0026,
        upgrade_sensitivity: 0.4,
        lag_sensitivity: 0.0,
        codes: &[
            "MAP_KEY_QUOTA_EXCEEDED",
            "MAP_GEOCODE_FAILED",
            "MAP_TILE_TIMEOUT",
        ],
    },
    TopicModel {
        popularity: 0.25,
        hazard: 0.0030,
        upgrade_sensitivity: 0.5,
        lag_sensitivity: 0.05,
        codes: &[
            "LOGIN_CODE_EXPIRED",
            "LOGIN_SESSION_INVALID",
            "LOGIN_RATE_LIMITED",
        ],
    },
    TopicModel {
        popularity: 0.15,
        hazard: 0.0038,
        upgrade_sensitivity: 0.8,
        lag_sensitivity: 0.10,
        codes: &[
            "PUSH_TEMPLATE_REJECTED",
            "PUSH_TOKEN_INVALID",
            "PUSH_QUOTA_EXCEEDED",
        ],
    },
];

const T: usize = TOPICS.len();

/// A time zone, its standard offset (no DST: close enough for office hours) and how its
/// country writes a mobile number: `+cc`, one of the prefixes, then random digits.
struct Zone {
    tz: &'static str,
    offset_min: i32,
    share: f64,
    country: &'static str,
    prefixes: &'static [&'static str],
    digits: usize,
}

const ZONES: [Zone; 10] = [
    Zone {
        tz: "Asia/Shanghai",
        offset_min: 480,
        share: 0.30,
        country: "86",
        prefixes: &[
            "131", "135", "136", "138", "139", "150", "152", "158", "186", "188",
        ],
        digits: 8,
    },
    Zone {
        tz: "America/New_York",
        offset_min: -300,
        share: 0.14,
        country: "1",
        prefixes: &["212", "347", "646", "718", "917"],
        digits: 7,
    },
    Zone {
        tz: "Europe/Berlin",
        offset_min: 60,
        share: 0.10,
        country: "49",
        prefixes: &["151", "152", "160", "170", "171", "176"],
        digits: 8,
    },
    Zone {
        tz: "America/Los_Angeles",
        offset_min: -480,
        share: 0.10,
        country: "1",
        prefixes: &["213", "310", "323", "408", "415", "650"],
        digits: 7,
    },
    Zone {
        tz: "Asia/Singapore",
        offset_min: 480,
        share: 0.08,
        country: "65",
        prefixes: &["8", "9"],
        digits: 7,
    },
    Zone {
        tz: "Europe/London",
        offset_min: 0,
        share: 0.08,
        country: "44",
        prefixes: &["74", "75", "77", "78", "79"],
        digits: 8,
    },
    Zone {
        tz: "Asia/Tokyo",
        offset_min: 540,
        share: 0.07,
        country: "81",
        prefixes: &["70", "80", "90"],
        digits: 8,
    },
    Zone {
        tz: "Asia/Kolkata",
        offset_min: 330,
        share: 0.05,
        country: "91",
        prefixes: &["70", "81", "90", "98", "99"],
        digits: 8,
    },
    Zone {
        tz: "Australia/Sydney",
        offset_min: 600,
        share: 0.04,
        country: "61",
        prefixes: &["4"],
        digits: 8,
    },
    Zone {
        tz: "America/Sao_Paulo",
        offset_min: -180,
        share: 0.04,
        country: "55",
        prefixes: &["119"],
        digits: 8,
    },
];

/// The largest offset east of UTC: a local day `d` never starts earlier than
/// `start + d days - this`, which is how far the stream can be flushed.
const MAX_EAST_MS: i64 = 600 * 60_000;

const TIERS: [(Tier, f64); 4] = [
    (Tier::Free, 0.55),
    (Tier::Standard, 0.25),
    (Tier::Gold, 0.15),
    (Tier::Platinum, 0.05),
];

/// Calls `on_user` once per user first, then `on_event` for every event in non-decreasing
/// ts order, all within `[start_ms, start_ms + days)`. Streaming: memory is O(users ×
/// topics) whatever the number of days. The same options give the same output, byte for
/// byte.
pub fn simulate(
    opts: &SimulateOptions,
    mut on_user: impl FnMut(&UserProfile),
    mut on_event: impl FnMut(&Event),
) {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let days = i32::try_from(opts.days).unwrap_or(i32::MAX / 2);
    let weekday0 = weekday(opts.start_ms);
    let releases = Releases::schedule(&mut rng, days, weekday0);
    let mut users = Vec::with_capacity(opts.users);
    for i in 0..opts.users {
        let (profile, state) = new_user(&mut rng, i, &releases);
        on_user(&profile);
        users.push(state);
    }
    if days == 0 {
        return;
    }

    let end_ms = opts.start_ms.saturating_add(i64::from(days) * DAY_MS);
    let mut out = Stream {
        buf: Vec::with_capacity(opts.users * 8),
        // Seqs below `users` are reserved for the start-of-history version reports.
        seq: opts.users as u64,
        lo: opts.start_ms,
        hi: end_ms,
    };
    let mut writer = Writer::default();
    let world = World {
        start_ms: opts.start_ms,
        releases: &releases,
        weekday0,
    };
    for d in -BURN_IN_DAYS..=days {
        for (i, user) in users.iter_mut().enumerate() {
            step(&mut rng, &world, user, i as u32, d, &mut out);
        }
        if d == 0 {
            // Every user's version as of day 0, reported first thing.
            for (i, user) in users.iter().enumerate() {
                out.buf.push(Rec {
                    ts: opts.start_ms,
                    seq: i as u64,
                    user: i as u32,
                    kind: EventKind::SdkVersion,
                    topic: 0,
                    attr: pack_version(user.start_version),
                });
            }
        }
        let cutoff = opts.start_ms + i64::from(d + 1) * DAY_MS - MAX_EAST_MS;
        out.flush(cutoff, |r| on_event(writer.event(r)));
    }
    out.flush(i64::MAX, |r| on_event(writer.event(r)));
}

/// Day of the week of the UTC day holding `ms`, Monday = 0.
fn weekday(ms: i64) -> i32 {
    // 1970-01-01 was a Thursday.
    ((ms.div_euclid(DAY_MS) + 3).rem_euclid(7)) as i32
}

/// SDK versions are `3.minor.patch`; ordered as `(minor, patch)`.
type Version = (u32, u32);

fn pack_version(v: Version) -> u32 {
    (v.0 << 16) | (v.1 & 0xffff)
}

/// The platform's release calendar: (day, version), in day order.
struct Releases(Vec<(i32, Version)>);

impl Releases {
    /// A minor every 18–24 days with two patches in between, shipped on weekdays.
    fn schedule(rng: &mut StdRng, days: i32, weekday0: i32) -> Self {
        let weekday_on_or_after = |day: i32| {
            let wd = (weekday0 + day).rem_euclid(7);
            if wd >= 5 { day + 7 - wd } else { day }
        };
        let mut list = Vec::new();
        let mut minor = FIRST_MINOR;
        let mut day = -BURN_IN_DAYS - rng.random_range(1..21);
        while day <= days {
            let next = day + 21 + rng.random_range(-3..=3);
            list.push((day, (minor, 0)));
            for (patch, at) in [
                (1, day + rng.random_range(5..9)),
                (2, day + rng.random_range(12..16)),
            ] {
                let at = weekday_on_or_after(at);
                if at < next {
                    list.push((at, (minor, patch)));
                }
            }
            minor += 1;
            day = weekday_on_or_after(next);
        }
        Self(list)
    }

    fn newest(&self, day: i32) -> Version {
        let n = self.0.partition_point(|(d, _)| *d <= day);
        self.0[n.saturating_sub(1)].1
    }
}

/// The latent state of one (user, topic) pair.
#[derive(Clone, Copy, Default)]
struct Pair {
    /// Interest weight; 0 when the user does not use the topic.
    weight: f64,
    /// Days of doc reading left before errors break out.
    brewing: u8,
    /// Days of the error burst left.
    erroring: u8,
    /// Quiet days after an episode before another can start.
    cooldown: u8,
    severity: f64,
    code: u8,
    contact_day: Option<i32>,
}

struct UserState {
    offset_ms: i64,
    tier: Tier,
    activity: f64,
    /// Cumulative interest weights over `TOPICS`, for picking an event's topic.
    cumulative: [f64; T],
    /// Mean delay in days between a release and this user's upgrade.
    upgrade_delay: f64,
    version: Version,
    /// The version as of `start_ms`, reported at the start of the history.
    start_version: Version,
    upgrade_day: Option<i32>,
    /// Day of the last upgrade and how big it was (1 for one minor, up to 2 for many).
    last_upgrade: Option<(i32, f64)>,
    contacts: u32,
    pairs: [Pair; T],
}

fn new_user(rng: &mut StdRng, index: usize, releases: &Releases) -> (UserProfile, UserState) {
    let tier = TIERS[pick(rng, TIERS.iter().map(|(_, s)| *s))].0;
    let zone = &ZONES[pick(rng, ZONES.iter().map(|z| z.share))];
    let mut phone = String::with_capacity(16);
    phone.push('+');
    phone.push_str(zone.country);
    phone.push_str(zone.prefixes[rng.random_range(0..zone.prefixes.len())]);
    // The subscriber number never starts with 0 or 1 (a North American exchange can't).
    phone.push(char::from(b'0' + rng.random_range(2..10u8)));
    for _ in 1..zone.digits {
        phone.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    let has_phone = rng.random_bool(0.96);
    let profile = UserProfile {
        user: user_id(index),
        tier,
        tz: zone.tz.to_string(),
        phone: has_phone.then_some(phone),
        consent: rng.random_bool(0.85),
        do_not_call: rng.random_bool(0.03),
    };

    // Lognormal with mean 1: most users moderate, a long tail of heavy ones.
    let activity = (0.6 * normal(rng) - 0.18).exp();

    let mut pairs = [Pair::default(); T];
    let n_topics = pick(rng, [0.4, 0.4, 0.2].into_iter()) + 1;
    let mut chosen = 0;
    while chosen < n_topics {
        let t = pick(rng, MODELS.iter().map(|m| m.popularity));
        if pairs[t].weight == 0.0 {
            pairs[t].weight = if chosen == 0 {
                1.0
            } else {
                rng.random_range(0.3..0.8)
            };
            chosen += 1;
        }
    }
    let total: f64 = pairs.iter().map(|p| p.weight).sum();
    let mut cumulative = [0.0; T];
    let mut acc = 0.0;
    for (c, p) in cumulative.iter_mut().zip(pairs.iter_mut()) {
        p.weight /= total;
        acc += p.weight;
        *c = acc;
    }

    // Eager users stay current, laggards sit on old versions for months.
    let (upgrade_delay, lag) = match pick(rng, [0.35, 0.45, 0.20].into_iter()) {
        0 => (4.0, 0),
        1 => (18.0, rng.random_range(0..=2)),
        _ => (150.0, rng.random_range(2..=9)),
    };
    let newest = releases.newest(-BURN_IN_DAYS);
    let version = if lag == 0 {
        newest
    } else {
        (newest.0 - lag, rng.random_range(0..=3))
    };
    let state = UserState {
        offset_ms: i64::from(zone.offset_min) * 60_000,
        tier,
        activity,
        cumulative,
        upgrade_delay,
        version,
        start_version: version,
        upgrade_day: None,
        last_upgrade: None,
        contacts: 0,
        pairs,
    };
    (profile, state)
}

fn user_id(index: usize) -> String {
    format!("u{:06}", index + 1)
}

struct World<'a> {
    start_ms: i64,
    releases: &'a Releases,
    weekday0: i32,
}

/// Advances one user by their local day `d`, writing that day's events.
fn step(rng: &mut StdRng, world: &World, u: &mut UserState, user: u32, d: i32, out: &mut Stream) {
    let mut day = Day {
        out,
        user,
        d,
        // Days wholly before the start only move the latent state.
        emit: d >= -1,
        weekend: (world.weekday0 + d).rem_euclid(7) >= 5,
        start_ms: world.start_ms + i64::from(d) * DAY_MS - u.offset_ms,
    };
    let newest = world.releases.newest(d);
    upgrade_sdk(rng, &mut day, world.start_ms, u, newest);
    // Fresh upgrades break things for about a week; old versions break some topics.
    let exposure = Exposure {
        activity: u.activity,
        upgrade_bump: match u.last_upgrade {
            Some((at, size)) if d - at <= 10 => size * (-f64::from(d - at) / 4.0).exp(),
            _ => 0.0,
        },
        lag: f64::from(newest.0.saturating_sub(u.version.0).min(8)),
    };
    everyday_use(rng, &mut day, u, &exposure);
    trouble(rng, &mut day, u, &exposure);
}

/// One user's local day `d` and where its events go.
struct Day<'a> {
    out: &'a mut Stream,
    user: u32,
    d: i32,
    emit: bool,
    weekend: bool,
    /// The user's local midnight.
    start_ms: i64,
}

impl Day<'_> {
    /// Writes an event at a random time of the day and returns that time.
    fn push(&mut self, rng: &mut StdRng, kind: EventKind, topic: usize, attr: u32) -> i64 {
        let ts = self.start_ms + office_time_ms(rng);
        self.out.push(ts, self.user, kind, topic as u8, attr);
        ts
    }

    /// Damps trouble and contacts on a weekend so that, with its fewer active days, they
    /// come to about a third of a weekday's.
    fn trouble_factor(&self) -> f64 {
        if self.weekend { 0.5 } else { 1.0 }
    }
}

/// What makes a user's topics break on a given day.
struct Exposure {
    activity: f64,
    /// Decays over the week or so after an upgrade.
    upgrade_bump: f64,
    /// Minors behind the newest, capped.
    lag: f64,
}

/// SDK upgrades: one is scheduled once a new minor is out and made on the day it falls due.
fn upgrade_sdk(rng: &mut StdRng, day: &mut Day, start_ms: i64, u: &mut UserState, newest: Version) {
    let d = day.d;
    // Users move when a new minor is out (taking its newest patch); a patch alone rarely
    // makes anyone upgrade.
    if u.version.0 < newest.0 && u.upgrade_day.is_none() {
        u.upgrade_day = Some(d + 1 + exponential(rng, 1.0 / u.upgrade_delay) as i32);
    }
    if u.upgrade_day.is_some_and(|due| due <= d) {
        // Jumping several minors at once breaks more.
        let size = (1.0 + 0.2 * f64::from(newest.0 - u.version.0 - 1)).min(2.0);
        u.version = newest;
        u.upgrade_day = None;
        u.last_upgrade = Some((d, size));
        let ts = day.push(rng, EventKind::SdkVersion, 0, pack_version(newest));
        if ts < start_ms {
            u.start_version = newest;
        }
    }
}

/// Baseline activity; a weekend has under half the active days and fewer events on each,
/// with trouble and contacts about a third of a weekday in all.
fn everyday_use(rng: &mut StdRng, day: &mut Day, u: &UserState, exposure: &Exposure) {
    let a = exposure.activity;
    let p_active = (0.35 + 0.25 * a).min(0.95) * if day.weekend { 0.45 } else { 1.0 };
    if !day.emit || !rng.random_bool(p_active) {
        return;
    }
    let volume = if day.weekend { 0.65 } else { 1.0 };
    for _ in 0..1 + poisson(rng, 3.0 * a * volume) {
        let t = pick_topic(rng, &u.cumulative);
        day.push(rng, EventKind::FeatureUse, t, 0);
    }
    for _ in 0..poisson(rng, 0.25 * a * volume) {
        let t = pick_topic(rng, &u.cumulative);
        day.push(rng, EventKind::DocView, t, 0);
    }
    for (t, (pair, model)) in u.pairs.iter().zip(&MODELS).enumerate() {
        if pair.weight == 0.0 {
            continue;
        }
        let rate = 0.05
            * pair.weight
            * a
            * (1.0 + model.lag_sensitivity * exposure.lag)
            * (1.0 + 6.0 * model.upgrade_sensitivity * exposure.upgrade_bump);
        for _ in 0..poisson(rng, rate) {
            let code = rng.random_range(0..model.codes.len()) as u32;
            day.push(rng, EventKind::ApiError, t, code);
        }
    }
}

/// Latent trouble episodes and the contacts they lead to.
fn trouble(rng: &mut StdRng, day: &mut Day, u: &mut UserState, exposure: &Exposure) {
    // Taken before the loop: a contact today on one topic does not change the odds of
    // another topic's contact today.
    let repeat = f64::from(u.contacts.min(3));
    for (t, model) in MODELS.iter().enumerate() {
        let pair = &mut u.pairs[t];
        if pair.weight == 0.0 {
            continue;
        }
        let idle = pair.brewing == 0 && pair.erroring == 0;
        if idle && pair.cooldown > 0 {
            pair.cooldown -= 1;
        } else if idle {
            maybe_start_episode(rng, day, pair, model, u.tier, exposure, repeat);
        }
        episode_events(rng, day, pair, t);
        if contact_if_due(rng, day, pair, t) {
            u.contacts += 1;
        }
    }
}

/// A new episode on an idle pair, decided with whether it ends in a contact; without one,
/// a contact may still come out of the blue.
fn maybe_start_episode(
    rng: &mut StdRng,
    day: &Day,
    pair: &mut Pair,
    model: &TopicModel,
    tier: Tier,
    exposure: &Exposure,
    repeat: f64,
) {
    let hazard = model.hazard
        * (0.5 + pair.weight)
        * exposure.activity.sqrt()
        * (1.0 + 12.0 * model.upgrade_sensitivity * exposure.upgrade_bump)
        * (1.0 + model.lag_sensitivity * exposure.lag);
    if rng.random_bool(hazard.min(0.5)) {
        pair.brewing = rng.random_range(1..=4);
        pair.erroring = rng.random_range(2..=7);
        pair.severity = (0.5 + 0.7 * exponential(rng, 1.0)).min(3.0);
        pair.code = rng.random_range(0..model.codes.len()) as u8;
        let tier_base = [0.33, 0.42, 0.50, 0.58][tier as usize];
        let p_contact = (tier_base + 0.1 * (pair.severity - 1.0) + 0.07 * repeat).clamp(0.15, 0.85);
        if pair.contact_day.is_none() && rng.random_bool(p_contact) {
            let after_errors = pick(rng, [2.0, 3.0, 3.0, 2.0, 1.0, 1.0].into_iter());
            pair.contact_day = Some(day.d + i32::from(pair.brewing) + after_errors as i32);
        }
    } else if pair.contact_day.is_none() {
        // Contacts with no visible precursor.
        let tier_factor = 1.0 + 0.25 * tier.rank();
        let noise = 0.001 * tier_factor * (1.0 + 0.3 * repeat) * day.trouble_factor();
        if rng.random_bool(noise) {
            pair.contact_day = Some(day.d);
        }
    }
}

/// The doc reading of an episode's first days, then its burst of errors.
fn episode_events(rng: &mut StdRng, day: &mut Day, pair: &mut Pair, t: usize) {
    let day_factor = day.trouble_factor();
    if pair.brewing > 0 {
        pair.brewing -= 1;
        if day.emit {
            for _ in 0..poisson(rng, 0.9 * pair.severity * day_factor) {
                day.push(rng, EventKind::DocView, t, 0);
            }
            for _ in 0..poisson(rng, 0.4 * pair.severity * day_factor) {
                day.push(rng, EventKind::ApiError, t, u32::from(pair.code));
            }
        }
    } else if pair.erroring > 0 {
        pair.erroring -= 1;
        if pair.erroring == 0 {
            pair.cooldown = 7;
        }
        if day.emit {
            for _ in 0..poisson(rng, 1.0 * pair.severity * day_factor) {
                day.push(rng, EventKind::DocView, t, 0);
            }
            // Errors come from the user's app in the field, weekends included.
            for _ in 0..poisson(rng, 3.0 * pair.severity * (0.5 + 0.5 * day_factor)) {
                let code = if rng.random_bool(0.8) {
                    pair.code
                } else {
                    rng.random_range(0..MODELS[t].codes.len()) as u8
                };
                day.push(rng, EventKind::ApiError, t, u32::from(code));
            }
        }
    }
}

/// Whether the user gets in touch about the pair's topic today.
fn contact_if_due(rng: &mut StdRng, day: &mut Day, pair: &mut Pair, t: usize) -> bool {
    if pair.contact_day.is_none_or(|due| due > day.d) {
        return false;
    }
    // Most people wait for Monday rather than call on a weekend.
    if day.weekend && rng.random_bool(0.7) {
        return false;
    }
    pair.contact_day = None;
    // Support helps: the burst dies down soon after.
    pair.erroring = pair.erroring.min(2);
    if day.emit {
        day.push(rng, EventKind::SupportContact, t, 0);
    }
    true
}

/// Milliseconds into a local day: mostly office hours (a peak early afternoon), sometimes
/// early or late.
fn office_time_ms(rng: &mut StdRng) -> i64 {
    let hour = if rng.random_bool(0.82) {
        9.0 + 4.5 * (rng.random::<f64>() + rng.random::<f64>())
    } else {
        7.0 + 16.0 * rng.random::<f64>()
    };
    (hour * HOUR_MS) as i64
}

fn pick_topic(rng: &mut StdRng, cumulative: &[f64; T]) -> usize {
    let x = rng.random::<f64>();
    cumulative
        .iter()
        .position(|c| x < *c)
        .unwrap_or_else(|| cumulative.iter().rposition(|c| *c > 0.0).unwrap_or(0))
}

/// An index drawn with probability proportional to `weights`.
fn pick(rng: &mut StdRng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
        last = i;
    }
    last
}

/// Knuth's method; the means here are small (a normal approximation covers the rest).
fn poisson(rng: &mut StdRng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0) as u32;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p = rng.random::<f64>();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

fn exponential(rng: &mut StdRng, rate: f64) -> f64 {
    -(1.0 - rng.random::<f64>()).ln() / rate
}

/// Box–Muller, one of the pair.
fn normal(rng: &mut StdRng) -> f64 {
    let r = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
    r * (std::f64::consts::TAU * rng.random::<f64>()).cos()
}

/// An event before it is written: small, so a day's worth sorts fast.
struct Rec {
    ts: i64,
    seq: u64,
    user: u32,
    kind: EventKind,
    topic: u8,
    /// Error code index for `api_error`, packed version for `sdk_version`.
    attr: u32,
}

/// The events generated but not yet written; a day or two of them at most.
struct Stream {
    buf: Vec<Rec>,
    seq: u64,
    lo: i64,
    hi: i64,
}

impl Stream {
    fn push(&mut self, ts: i64, user: u32, kind: EventKind, topic: u8, attr: u32) {
        if (self.lo..self.hi).contains(&ts) {
            self.buf.push(Rec {
                ts,
                seq: self.seq,
                user,
                kind,
                topic,
                attr,
            });
        }
        self.seq += 1;
    }

    /// Writes, in time order, every buffered event before `cutoff`: nothing generated
    /// later can come before it.
    fn flush(&mut self, cutoff: i64, mut write: impl FnMut(&Rec)) {
        self.buf.sort_unstable_by_key(|r| (r.ts, r.seq));
        let n = self.buf.partition_point(|r| r.ts < cutoff);
        self.buf.drain(..n).for_each(|r| write(&r));
    }
}

/// Turns records into events, reusing one `Event`'s buffers.
struct Writer {
    event: Event,
    next_id: u64,
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            event: Event {
                id: String::new(),
                user: String::new(),
                ts: 0,
                kind: EventKind::FeatureUse,
                topic: String::new(),
                attrs: Map::new(),
            },
            next_id: 0,
        }
    }
}

impl Writer {
    fn event(&mut self, r: &Rec) -> &Event {
        self.next_id += 1;
        let e = &mut self.event;
        e.id.clear();
        let _ = write!(e.id, "e{}", self.next_id);
        e.user.clear();
        let _ = write!(e.user, "u{:06}", r.user + 1);
        e.ts = r.ts;
        e.kind = r.kind;
        e.topic.clear();
        match r.kind {
            EventKind::SdkVersion => set_attr(&mut e.attrs, "version", |s| {
                let _ = write!(s, "{SDK_MAJOR}.{}.{}", r.attr >> 16, r.attr & 0xffff);
            }),
            EventKind::ApiError => {
                let model = &MODELS[usize::from(r.topic)];
                e.topic.push_str(TOPICS[usize::from(r.topic)]);
                set_attr(&mut e.attrs, "code", |s| {
                    s.push_str(model.codes[r.attr as usize % model.codes.len()]);
                });
            }
            _ => {
                e.topic.push_str(TOPICS[usize::from(r.topic)]);
                e.attrs.clear();
            }
        }
        &self.event
    }
}

/// Makes `attrs` exactly `{key: <string>}`, reusing the string when the key is already the
/// only one there.
fn set_attr(attrs: &mut Map<String, Value>, key: &str, fill: impl FnOnce(&mut String)) {
    if attrs.len() == 1
        && let Some(Value::String(s)) = attrs.get_mut(key)
    {
        s.clear();
        fill(s);
        return;
    }
    attrs.clear();
    let mut s = String::new();
    fill(&mut s);
    attrs.insert(key.to_string(), Value::String(s));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use super::*;
    use crate::event::parse_profile;

    /// 2026-03-02, a Monday.
    const START: i64 = 1_772_409_600_000;

    fn run(users: usize, days: u32, seed: u64) -> (Vec<UserProfile>, Vec<Event>) {
        let opts = SimulateOptions {
            users,
            days,
            seed,
            start_ms: START,
        };
        let (mut profiles, mut events) = (Vec::new(), Vec::new());
        simulate(
            &opts,
            |p| profiles.push(p.clone()),
            |e| events.push(e.clone()),
        );
        (profiles, events)
    }

    const DAYS: u32 = 84;

    /// One shared history, big enough for the statistical properties.
    fn history() -> &'static (Vec<UserProfile>, Vec<Event>) {
        static HISTORY: OnceLock<(Vec<UserProfile>, Vec<Event>)> = OnceLock::new();
        HISTORY.get_or_init(|| run(400, DAYS, 7))
    }

    fn of_kind(events: &[Event], kind: EventKind) -> impl Iterator<Item = &Event> {
        events.iter().filter(move |e| e.kind == kind)
    }

    /// Times of `kind` events per (user, topic).
    fn times(events: &[Event], kind: EventKind) -> HashMap<(&str, &str), Vec<i64>> {
        let mut map: HashMap<_, Vec<i64>> = HashMap::new();
        for e in of_kind(events, kind) {
            map.entry((e.user.as_str(), e.topic.as_str()))
                .or_default()
                .push(e.ts);
        }
        map
    }

    fn count_in(ts: &[i64], from: i64, to: i64) -> usize {
        ts.iter().filter(|t| (from..to).contains(*t)).count()
    }

    #[test]
    fn same_seed_gives_the_same_history_and_another_seed_differs() {
        let text = |(profiles, events): (Vec<UserProfile>, Vec<Event>)| {
            let mut out = serde_json::to_string(&profiles).expect("profiles serialise");
            out += &serde_json::to_string(&events).expect("events serialise");
            out
        };
        let a = text(run(60, 21, 1));
        assert_eq!(a, text(run(60, 21, 1)));
        assert_ne!(a, text(run(60, 21, 2)));
        assert!(a.len() > 10_000, "a real history, not an empty one");
    }

    #[test]
    fn events_are_time_ordered_inside_the_window_with_unique_ids() {
        let (profiles, events) = history();
        let end = START + i64::from(DAYS) * DAY_MS;
        assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(events.iter().all(|e| (START..end).contains(&e.ts)));
        assert!(events.first().is_some_and(|e| e.ts == START));
        assert!(events.last().is_some_and(|e| e.ts > end - DAY_MS));
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), events.len());
        assert_eq!(of_kind(events, EventKind::OutreachCall).count(), 0);
        let users: std::collections::HashSet<_> =
            profiles.iter().map(|p| p.user.as_str()).collect();
        assert!(events.iter().all(|e| users.contains(e.user.as_str())));
        // Between 50 and 150 events per user per 30 days.
        let per_user_month = events.len() as f64 / profiles.len() as f64 * 30.0 / DAYS as f64;
        assert!((50.0..150.0).contains(&per_user_month), "{per_user_month}");
    }

    #[test]
    fn every_event_passes_ingest_validation() {
        let (_, events) = history();
        for e in events.iter().step_by(7) {
            let mut row = serde_json::to_value(e).expect("serialises");
            // Ingest wants no topic at all on an `sdk_version` row, not an empty one.
            if e.topic.is_empty()
                && let Some(obj) = row.as_object_mut()
            {
                obj.remove("topic");
            }
            let back = crate::event::parse_event(row).expect("valid event");
            assert_eq!(&back, e);
        }
        // Each user states their SDK version at the start, so lag is known from day 0.
        let at_start = of_kind(events, EventKind::SdkVersion)
            .filter(|e| e.ts == START)
            .count();
        assert_eq!(at_start, history().0.len());
    }

    #[test]
    fn profiles_are_valid_and_follow_the_tier_mix() {
        let (profiles, events) = run(4000, 0, 3);
        assert!(events.is_empty());
        assert_eq!(profiles[122].user, "u000123");
        for p in &profiles {
            let parsed =
                parse_profile(serde_json::to_value(p).expect("serialises")).expect("valid");
            assert_eq!(&parsed, p);
        }
        let share = |f: &dyn Fn(&UserProfile) -> bool| {
            profiles.iter().filter(|p| f(p)).count() as f64 / profiles.len() as f64
        };
        for (tier, target) in TIERS {
            let got = share(&|p| p.tier == tier);
            assert!((got - target).abs() < 0.03, "{tier:?}: {got} vs {target}");
        }
        assert!((share(&|p| p.consent) - 0.85).abs() < 0.03);
        assert!((share(&|p| p.do_not_call) - 0.03).abs() < 0.015);
        assert!(share(&|p| p.tz == "Asia/Shanghai") > 0.25);
        assert!(
            profiles
                .iter()
                .filter(|p| p.tz == "Asia/Shanghai")
                .filter_map(|p| p.phone.as_deref())
                .all(|ph| ph.starts_with("+861") && ph.len() == 14)
        );
    }

    /// Doc views on a contact's (user, topic) in the 3 days before it, and the same pair's
    /// average over any 3 days, summed over contacts.
    fn docs_before_contacts(events: &[Event], days: u32) -> (f64, f64, usize) {
        let docs = times(events, EventKind::DocView);
        let (mut before, mut average, mut contacts) = (0.0, 0.0, 0);
        for c in of_kind(events, EventKind::SupportContact) {
            let Some(ts) = docs.get(&(c.user.as_str(), c.topic.as_str())) else {
                continue;
            };
            contacts += 1;
            before += count_in(ts, c.ts - 3 * DAY_MS, c.ts) as f64;
            average += ts.len() as f64 * 3.0 / f64::from(days);
        }
        (before, average, contacts)
    }

    #[test]
    fn doc_views_rise_in_the_three_days_before_a_support_contact() {
        let (before, average, contacts) = docs_before_contacts(&history().1, DAYS);
        assert!(contacts > 50, "{contacts} contacts with doc views");
        assert!(
            before > 2.0 * average,
            "{before} doc views in the 3 days before contacts vs {average} on average"
        );
    }

    /// API errors of the upgrading user in the week before and the week after each upgrade
    /// that has both weeks inside the history.
    fn errors_around_upgrades(events: &[Event], days: u32) -> (usize, usize, usize) {
        let end = START + i64::from(days) * DAY_MS;
        let mut errors: HashMap<&str, Vec<i64>> = HashMap::new();
        for e in of_kind(events, EventKind::ApiError) {
            errors.entry(e.user.as_str()).or_default().push(e.ts);
        }
        let week = 7 * DAY_MS;
        let (mut before, mut after, mut upgrades) = (0, 0, 0);
        for u in of_kind(events, EventKind::SdkVersion)
            .filter(|e| e.ts - week >= START && e.ts + week <= end)
        {
            upgrades += 1;
            let ts = errors.get(u.user.as_str()).map_or(&[][..], |v| v);
            before += count_in(ts, u.ts - week, u.ts);
            after += count_in(ts, u.ts, u.ts + week);
        }
        (before, after, upgrades)
    }

    #[test]
    fn api_errors_rise_in_the_week_after_an_sdk_upgrade() {
        let (before, after, upgrades) = errors_around_upgrades(&history().1, DAYS);
        assert!(upgrades > 100, "{upgrades} upgrades");
        assert!(
            after as f64 > 1.3 * before as f64,
            "{after} errors after upgrades vs {before} before"
        );
    }

    /// Events per weekend day over events per weekday, in each user's own time zone, for a
    /// history starting on a Monday.
    fn weekend_ratio(profiles: &[UserProfile], events: &[Event], days: u32) -> f64 {
        let zones: HashMap<&str, jiff::tz::TimeZone> = profiles
            .iter()
            .map(|p| {
                let tz = jiff::tz::TimeZone::get(&p.tz).expect("IANA zone");
                (p.user.as_str(), tz)
            })
            .collect();
        let (mut weekend, mut weekday) = (0.0, 0.0);
        for e in events.iter().filter(|e| e.ts > START) {
            let t = jiff::Timestamp::from_millisecond(e.ts).expect("valid time");
            let day = zones[e.user.as_str()].to_datetime(t).weekday();
            if matches!(
                day,
                jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
            ) {
                weekend += 1.0;
            } else {
                weekday += 1.0;
            }
        }
        let weekend_days = (0..days).filter(|d| d % 7 >= 5).count() as f64;
        (weekend / weekend_days) / (weekday / (f64::from(days) - weekend_days))
    }

    #[test]
    fn weekends_are_quieter_than_weekdays_in_local_time() {
        let (profiles, events) = history();
        let ratio = weekend_ratio(profiles, events, DAYS);
        assert!(
            (0.2..0.6).contains(&ratio),
            "a weekend day has {ratio} of a weekday's events"
        );
    }

    #[test]
    fn about_one_in_twenty_active_pairs_contacts_support_in_14_days() {
        let (_, events) = history();
        let rate = contact_rate(events, START, DAYS);
        assert!((0.02..0.10).contains(&rate), "14-day contact rate {rate}");
    }

    /// Share of (active pair, 14-day window) with a support contact; a pair is active when
    /// the user has used the topic at all.
    fn contact_rate(events: &[Event], start: i64, days: u32) -> f64 {
        let windows = i64::from(days / 14);
        let active: std::collections::HashSet<_> = of_kind(events, EventKind::FeatureUse)
            .map(|e| (e.user.as_str(), e.topic.as_str()))
            .collect();
        let hits: std::collections::HashSet<_> = of_kind(events, EventKind::SupportContact)
            .map(|e| {
                (
                    e.user.as_str(),
                    e.topic.as_str(),
                    (e.ts - start) / (14 * DAY_MS),
                )
            })
            .filter(|(_, _, w)| *w < windows)
            .collect();
        hits.len() as f64 / (active.len() as f64 * windows as f64)
    }

    /// `cargo test --release -p farsight-server --lib simulate::tests::stats -- --ignored --nocapture`
    #[test]
    #[ignore = "prints figures for the docs"]
    fn stats() {
        let (users, days) = (2000, 60);
        for scale in [users, 5 * users] {
            let opts = SimulateOptions {
                users: scale,
                days,
                seed: 42,
                start_ms: START,
            };
            let started = std::time::Instant::now();
            let mut n = 0u64;
            simulate(&opts, |_| {}, |_| n += 1);
            let elapsed = started.elapsed();
            println!(
                "{scale} users x {days} days: {n} events in {elapsed:?}, {:.1} per user per 30 days",
                n as f64 / scale as f64 * 30.0 / f64::from(days)
            );
        }
        let (profiles, events) = run(users, days, 42);
        let mut by_kind: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            *by_kind.entry(e.kind.as_str()).or_default() += 1;
        }
        let docs = times(&events, EventKind::DocView);
        let errs = times(&events, EventKind::ApiError);
        let contacts: Vec<_> = of_kind(&events, EventKind::SupportContact).collect();
        let quiet = contacts
            .iter()
            .filter(|c| {
                let key = (c.user.as_str(), c.topic.as_str());
                let from = c.ts - 7 * DAY_MS;
                let d = docs.get(&key).map_or(0, |v| count_in(v, from, c.ts));
                let e = errs.get(&key).map_or(0, |v| count_in(v, from, c.ts));
                d + e == 0
            })
            .count();
        println!("by kind: {by_kind:?}");
        println!(
            "14-day contact rate {:.3}; {} contacts, {quiet} without doc/error in the week before",
            contact_rate(&events, START, days),
            contacts.len()
        );
        let (before, average, _) = docs_before_contacts(&events, days);
        let (err_before, err_after, upgrades) = errors_around_upgrades(&events, days);
        println!(
            "doc views 3 days before a contact: {:.2}x the pair's average; \
             api errors week after/before {upgrades} upgrades: {:.2}x; weekend/weekday {:.2}",
            before / average,
            err_after as f64 / err_before as f64,
            weekend_ratio(&profiles, &events, days)
        );
    }
}
