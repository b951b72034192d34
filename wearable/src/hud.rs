//! The heads-up display in the wearer's view: the link to the relay, who is watching, whether
//! an agent froze the picture, the agent's latest written instruction, and a note when a mark
//! could not be placed at a measured depth. [`Hud`] is the state, driven by the link's events
//! and unit-tested on its own; the plugin only writes it into text.

use std::collections::BTreeMap;

use bevy::prelude::*;
use farsight_protocol::control::{DepthSource, Participant};
use farsight_protocol::{AnnotationId, AnnotationKind, ControlMessage, ParticipantId, Role};

use crate::anchor::MarkAnchored;
use crate::link::LinkEvent;
use crate::view::WearerView;

const FONT_PX: f32 = 16.0;
const INSTRUCTION_FONT_PX: f32 = 22.0;
const LIVE: Color = Color::srgb(0.35, 0.9, 0.45);
const WAITING: Color = Color::srgb(1.0, 0.75, 0.2);
const FAILED: Color = Color::srgb(1.0, 0.35, 0.3);
const PLAIN: Color = Color::srgb(0.92, 0.93, 0.95);

#[derive(Debug, Clone)]
pub struct HudPlugin {
    /// The relay being published to, if any.
    pub relay: Option<String>,
}

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Hud::new(self.relay.clone()))
            .add_message::<LinkEvent>()
            .add_message::<MarkAnchored>()
            .add_systems(Update, (spawn_hud, follow_events, show_hud).chain());
    }
}

/// The link's state as the wearer is told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Not publishing anywhere.
    Offline,
    Connecting(String),
    Live,
    /// The relay went away; the link is trying again.
    Reconnecting,
    /// Every frame was published.
    Ended,
    /// An agent ended the session for everyone.
    SessionEnded,
    Failed(String),
}

/// Everything the HUD shows.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct Hud {
    pub connection: Connection,
    watchers: BTreeMap<ParticipantId, Participant>,
    /// The latest text label: which mark it is, who wrote it and what it says.
    instruction: Option<(AnnotationId, String, String)>,
    pub frozen: bool,
    /// Why the last mark is not where the agent's depth would put it, if so.
    pub notice: Option<String>,
}

impl Hud {
    pub fn new(relay: Option<String>) -> Self {
        Self {
            connection: relay.map_or(Connection::Offline, Connection::Connecting),
            watchers: BTreeMap::new(),
            instruction: None,
            frozen: false,
            notice: None,
        }
    }

    pub fn on_link(&mut self, event: &LinkEvent) {
        match event {
            LinkEvent::Connected { .. } => self.connection = Connection::Live,
            LinkEvent::Lost(_) => {
                self.connection = Connection::Reconnecting;
                // The relay tells who is there again once it is back.
                self.watchers.clear();
            }
            LinkEvent::Finished => self.connection = Connection::Ended,
            LinkEvent::SessionEnded => self.connection = Connection::SessionEnded,
            LinkEvent::Failed(reason) => self.connection = Connection::Failed(reason.clone()),
            LinkEvent::Presence {
                participant,
                present,
            } => {
                if *present {
                    self.watchers.insert(participant.id, participant.clone());
                } else {
                    self.watchers.remove(&participant.id);
                }
            }
            LinkEvent::Agent(message) => self.on_agent(message),
            LinkEvent::KeyframeRequested | LinkEvent::Bitrate(_) => {}
        }
    }

    fn on_agent(&mut self, message: &ControlMessage) {
        match message {
            ControlMessage::Annotate(mark)
                if mark.kind == AnnotationKind::Text && !mark.text.is_empty() =>
            {
                let author = self
                    .watchers
                    .get(&mark.author)
                    .map_or_else(|| "Agent".to_owned(), |p| p.name.clone());
                self.instruction = Some((mark.id, author, mark.text.clone()));
            }
            ControlMessage::Erase { id, .. }
                if self.instruction.as_ref().is_some_and(|(i, ..)| i == id) =>
            {
                self.instruction = None;
            }
            ControlMessage::Clear { .. } => {
                self.instruction = None;
                self.notice = None;
            }
            ControlMessage::Freeze { .. } => self.frozen = true,
            ControlMessage::Unfreeze { .. } => self.frozen = false,
            _ => {}
        }
    }

    pub fn on_anchored(&mut self, anchored: &MarkAnchored) {
        self.notice = match anchored.depth {
            DepthSource::Measured => None,
            DepthSource::MedianPlane => {
                let distance = anchored
                    .points
                    .first()
                    .map_or(0.0, |p| p.distance(anchored.eye));
                Some(format!(
                    "No depth where mark {} was drawn: shown on a plane {distance:.1} m away",
                    anchored.mark.id
                ))
            }
        };
    }

    /// The first line: the link and, while frozen, that the agent holds a still picture.
    pub fn status_line(&self) -> (String, Color) {
        let (mut text, color) = match &self.connection {
            Connection::Offline => ("Not streaming".to_owned(), PLAIN),
            Connection::Connecting(relay) => (format!("Connecting to {relay}"), WAITING),
            Connection::Live => ("Live".to_owned(), LIVE),
            Connection::Reconnecting => ("Connection lost, reconnecting".to_owned(), WAITING),
            Connection::Ended => ("Stream ended".to_owned(), PLAIN),
            Connection::SessionEnded => ("Session ended by an agent".to_owned(), PLAIN),
            Connection::Failed(reason) => (format!("Disconnected: {reason}"), FAILED),
        };
        if self.frozen {
            text.push_str(" | agent froze the picture");
        }
        (text, color)
    }

    /// Who is watching: the agents and supervisors in the session, by name.
    pub fn watchers_line(&self) -> String {
        let names: Vec<String> = self
            .watchers
            .values()
            .filter(|p| p.role != Role::Wearable)
            .map(|p| match p.role {
                Role::Supervisor => format!("{} (supervisor)", p.name),
                _ => p.name.clone(),
            })
            .collect();
        if names.is_empty() {
            "No one watching".to_owned()
        } else {
            format!("Watching: {}", names.join(", "))
        }
    }

    pub fn instruction_line(&self) -> String {
        self.instruction
            .as_ref()
            .map(|(_, author, text)| format!("{author}: {text}"))
            .unwrap_or_default()
    }
}

/// Which line of the HUD a text entity shows.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HudLine {
    Status,
    Watchers,
    Notice,
    Instruction,
}

fn follow_events(
    mut hud: ResMut<Hud>,
    mut link: MessageReader<LinkEvent>,
    mut anchored: MessageReader<MarkAnchored>,
) {
    for event in link.read() {
        hud.on_link(event);
    }
    for mark in anchored.read() {
        hud.on_anchored(mark);
    }
}

fn spawn_hud(mut commands: Commands, views: Query<Entity, Added<WearerView>>) {
    for view in &views {
        let text = |line: HudLine, size: f32| {
            (
                line,
                Text::new(""),
                TextFont::from_font_size(size),
                TextColor(PLAIN),
            )
        };
        let panel = BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55));
        commands
            .spawn((
                Name::new("HUD"),
                UiTargetCamera(view),
                Node {
                    width: Val::Percent(100.0),
                    height: Val::Percent(100.0),
                    flex_direction: FlexDirection::Column,
                    justify_content: JustifyContent::SpaceBetween,
                    padding: UiRect::all(Val::Px(8.0)),
                    ..default()
                },
            ))
            .with_children(|hud| {
                hud.spawn(Node {
                    justify_content: JustifyContent::SpaceBetween,
                    ..default()
                })
                .with_children(|top| {
                    for line in [HudLine::Status, HudLine::Watchers] {
                        top.spawn((Node::default(), panel))
                            .with_child(text(line, FONT_PX));
                    }
                });
                hud.spawn(Node {
                    flex_direction: FlexDirection::Column,
                    align_items: AlignItems::Center,
                    row_gap: Val::Px(4.0),
                    ..default()
                })
                .with_children(|bottom| {
                    bottom.spawn(text(HudLine::Notice, FONT_PX));
                    bottom
                        .spawn((Node::default(), panel))
                        .with_child(text(HudLine::Instruction, INSTRUCTION_FONT_PX));
                });
            });
    }
}

fn show_hud(hud: Res<Hud>, mut lines: Query<(&HudLine, &mut Text, &mut TextColor)>) {
    if !hud.is_changed() {
        return;
    }
    for (line, mut text, mut color) in &mut lines {
        let (words, tint) = match line {
            HudLine::Status => hud.status_line(),
            HudLine::Watchers => (hud.watchers_line(), PLAIN),
            HudLine::Notice => (hud.notice.clone().unwrap_or_default(), WAITING),
            HudLine::Instruction => (hud.instruction_line(), PLAIN),
        };
        text.0 = words;
        color.0 = tint;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farsight_protocol::{Annotate, FrameSeq, SessionId, Style};

    const SESSION: SessionId = SessionId(7);

    fn agent(id: u64, name: &str) -> Participant {
        Participant {
            id: ParticipantId(id),
            role: Role::Agent,
            name: name.into(),
        }
    }

    fn label(id: u64, author: u64, text: &str) -> LinkEvent {
        LinkEvent::Agent(ControlMessage::Annotate(Annotate {
            session: SESSION,
            id: AnnotationId(id),
            author: ParticipantId(author),
            kind: AnnotationKind::Text,
            frame: FrameSeq(3),
            points: vec![[0.5, 0.5]],
            style: Style::default(),
            text: text.into(),
        }))
    }

    #[test]
    fn the_link_state_reads_as_the_wearer_needs_it() {
        let mut hud = Hud::new(Some("relay:4433".into()));
        assert_eq!(hud.status_line().0, "Connecting to relay:4433");
        hud.on_link(&LinkEvent::Connected {
            session: SESSION,
            resumed: false,
        });
        assert_eq!(hud.status_line(), ("Live".to_owned(), LIVE));
        hud.on_link(&LinkEvent::Lost("timed out".into()));
        assert_eq!(hud.connection, Connection::Reconnecting);
        hud.on_link(&LinkEvent::Failed("Unauthorized".into()));
        assert_eq!(hud.status_line().0, "Disconnected: Unauthorized");
        assert_eq!(Hud::new(None).status_line().0, "Not streaming");
    }

    #[test]
    fn watchers_come_and_go_and_are_forgotten_with_the_link() {
        let mut hud = Hud::new(Some("relay".into()));
        assert_eq!(hud.watchers_line(), "No one watching");
        for participant in [agent(2, "alice"), agent(3, "bob"), agent(2, "alice")] {
            hud.on_link(&LinkEvent::Presence {
                participant,
                present: true,
            });
        }
        hud.on_link(&LinkEvent::Presence {
            participant: Participant {
                id: ParticipantId(4),
                role: Role::Supervisor,
                name: "carol".into(),
            },
            present: true,
        });
        assert_eq!(
            hud.watchers_line(),
            "Watching: alice, bob, carol (supervisor)"
        );
        hud.on_link(&LinkEvent::Presence {
            participant: agent(3, "bob"),
            present: false,
        });
        assert_eq!(hud.watchers_line(), "Watching: alice, carol (supervisor)");
        hud.on_link(&LinkEvent::Lost("reset".into()));
        assert_eq!(hud.watchers_line(), "No one watching");
    }

    #[test]
    fn the_latest_text_label_is_the_instruction_until_erased() {
        let mut hud = Hud::new(Some("relay".into()));
        hud.on_link(&LinkEvent::Presence {
            participant: agent(2, "alice"),
            present: true,
        });
        hud.on_link(&label(10, 2, "Turn the red knob"));
        assert_eq!(hud.instruction_line(), "alice: Turn the red knob");
        hud.on_link(&label(11, 9, "Then the switch"));
        assert_eq!(hud.instruction_line(), "Agent: Then the switch");
        // Erasing an older label leaves the latest; erasing the latest clears it.
        let erase = |id| {
            LinkEvent::Agent(ControlMessage::Erase {
                session: SESSION,
                id: AnnotationId(id),
            })
        };
        hud.on_link(&erase(10));
        assert_eq!(hud.instruction_line(), "Agent: Then the switch");
        hud.on_link(&erase(11));
        assert_eq!(hud.instruction_line(), "");
    }

    #[test]
    fn freeze_and_a_median_plane_mark_are_said() {
        let mut hud = Hud::new(Some("relay".into()));
        hud.on_link(&LinkEvent::Connected {
            session: SESSION,
            resumed: false,
        });
        hud.on_link(&LinkEvent::Agent(ControlMessage::Freeze {
            session: SESSION,
            frame: FrameSeq(4),
        }));
        assert_eq!(hud.status_line().0, "Live | agent froze the picture");
        hud.on_link(&LinkEvent::Agent(ControlMessage::Unfreeze {
            session: SESSION,
        }));
        assert_eq!(hud.status_line().0, "Live");

        let LinkEvent::Agent(ControlMessage::Annotate(mark)) = label(5, 2, "here") else {
            unreachable!("label() makes an Annotate");
        };
        let mut anchored = MarkAnchored {
            mark,
            points: vec![Vec3::new(0.0, 0.0, -1.5)],
            depth: DepthSource::MedianPlane,
            eye: Vec3::ZERO,
        };
        hud.on_anchored(&anchored);
        assert_eq!(
            hud.notice.as_deref(),
            Some("No depth where mark 5 was drawn: shown on a plane 1.5 m away")
        );
        anchored.depth = DepthSource::Measured;
        hud.on_anchored(&anchored);
        assert_eq!(hud.notice, None);
    }
}
