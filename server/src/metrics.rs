//! Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections: Family<Labels, Counter>,
    pub connected: Gauge,
    pub control_errors: Family<Labels, Counter>,
    pub objects_received: Counter,
    pub bytes_received: Counter,
    pub objects_forwarded: Counter,
    pub bytes_forwarded: Counter,
    pub groups_dropped: Counter,
    pub annotations: Counter,
    pub members_too_slow: Counter,
    pub address_limited: Family<Labels, Counter>,
    pub events_accepted: Counter,
    pub events_duplicate: Counter,
    pub rows_rejected: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("farsight");
        let m = Self {
            connections: Family::default(),
            connected: Gauge::default(),
            control_errors: Family::default(),
            objects_received: Counter::default(),
            bytes_received: Counter::default(),
            objects_forwarded: Counter::default(),
            bytes_forwarded: Counter::default(),
            groups_dropped: Counter::default(),
            annotations: Counter::default(),
            members_too_slow: Counter::default(),
            address_limited: Family::default(),
            events_accepted: Counter::default(),
            events_duplicate: Counter::default(),
            rows_rejected: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Accepted QUIC connections by role",
            m.connections.clone(),
        );
        registry.register(
            "connected",
            "QUIC connections open now",
            m.connected.clone(),
        );
        registry.register(
            "control_errors",
            "Typed errors sent, by code",
            m.control_errors.clone(),
        );
        registry.register(
            "objects_received",
            "Media objects received from wearables",
            m.objects_received.clone(),
        );
        registry.register(
            "bytes_received",
            "Media bytes received from wearables",
            m.bytes_received.clone(),
        );
        registry.register(
            "objects_forwarded",
            "Media objects written to watchers",
            m.objects_forwarded.clone(),
        );
        registry.register(
            "bytes_forwarded",
            "Media bytes written to watchers",
            m.bytes_forwarded.clone(),
        );
        registry.register(
            "groups_dropped",
            "Groups reset because a watcher fell behind",
            m.groups_dropped.clone(),
        );
        registry.register("annotations", "Annotations accepted", m.annotations.clone());
        registry.register(
            "members_too_slow",
            "Connections closed because they left 1024 control messages unread",
            m.members_too_slow.clone(),
        );
        registry.register(
            "address_limited",
            "Connections refused for holding too many unauthenticated ones from one address, \
             and sign-ins refused after too many failures, by transport and limit",
            m.address_limited.clone(),
        );
        registry.register(
            "events_accepted",
            "Usage events stored with their feature updates",
            m.events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Usage events skipped as retries of stored ids",
            m.events_duplicate.clone(),
        );
        registry.register(
            "rows_rejected",
            "Event and user rows rejected as malformed",
            m.rows_rejected.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Counts a refusal by an address limit (`limit`: `unauthenticated` or `failed_sign_ins`).
    pub fn address_limited(&self, transport: &str, limit: &str) {
        let labels = vec![
            ("transport".to_string(), transport.to_string()),
            ("limit".to_string(), limit.to_string()),
        ];
        self.address_limited.get_or_create(&labels).inc();
    }

    /// Brings the relay's counters up to the core's (they only grow).
    pub fn sync_relay(&self, stats: &farsight_relay::Stats) {
        fn sync(counter: &Counter, value: u64) {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
        for (role, n) in &stats.connections {
            sync(
                &self.connections.get_or_create(&Self::label("role", role)),
                *n,
            );
        }
        for (code, n) in &stats.errors {
            let name = farsight_protocol::ErrorCode::from_u16(*code)
                .map_or_else(|| code.to_string(), |c| format!("{c:?}"));
            sync(
                &self
                    .control_errors
                    .get_or_create(&Self::label("code", &name)),
                *n,
            );
        }
        sync(&self.objects_received, stats.objects_received);
        sync(&self.bytes_received, stats.bytes_received);
        sync(&self.objects_forwarded, stats.objects_forwarded);
        sync(&self.bytes_forwarded, stats.bytes_forwarded);
        sync(&self.groups_dropped, stats.groups_dropped);
        sync(&self.annotations, stats.annotations);
        sync(&self.members_too_slow, stats.members_too_slow);
    }

    pub fn label(key: &str, value: &str) -> Labels {
        vec![(key.to_string(), value.to_string())]
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
