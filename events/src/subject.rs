//! NATS subject and stream names. Every name lives under a prefix (default
//! `forum`) so that several systems, or several tests, share one NATS server
//! without seeing each other.

use crate::Service;

/// The names derived from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Names under `prefix` (letters, digits, `_` and `-` only).
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.cmd.<service>.<command>`: where a command is sent.
    pub fn command(&self, service: Service, command: &str) -> String {
        format!("{}.cmd.{}.{}", self.prefix, service.as_str(), command)
    }

    /// `<prefix>.cmd.<service>.>`: what a service instance subscribes to.
    pub fn commands_of(&self, service: Service) -> String {
        format!("{}.cmd.{}.>", self.prefix, service.as_str())
    }

    /// `<prefix>.evt.<service>.<event_type>`: where an event is published.
    pub fn event(&self, service: Service, event_type: &str) -> String {
        format!("{}.evt.{}.{}", self.prefix, service.as_str(), event_type)
    }

    /// `<prefix>.evt.<service>.>`: every event of one service.
    pub fn events_of(&self, service: Service) -> String {
        format!("{}.evt.{}.>", self.prefix, service.as_str())
    }

    /// `<prefix>.evt.>`: the subjects the JetStream stream captures.
    pub fn all_events(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }

    /// `<prefix>.proj.<projection>`: a projector announces its checkpoint here.
    pub fn projection_progress(&self, projection: &str) -> String {
        format!("{}.proj.{}", self.prefix, projection)
    }

    /// `<prefix>.proj.>`: every projector's progress.
    pub fn all_projection_progress(&self) -> String {
        format!("{}.proj.>", self.prefix)
    }

    /// `<prefix>.gw.<topic>`: messages between gateway instances.
    pub fn gateway(&self, topic: &str) -> String {
        format!("{}.gw.{}", self.prefix, topic)
    }

    /// The JetStream stream holding every event: the prefix upper-cased,
    /// `-` replaced by `_`, followed by `_EVENTS`.
    pub fn stream_name(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase().replace('-', "_"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_under_the_prefix() {
        let s = Subjects::new("t-1");
        assert_eq!(
            s.command(Service::Auth, "register"),
            "t-1.cmd.auth.register"
        );
        assert_eq!(s.commands_of(Service::Posts), "t-1.cmd.posts.>");
        assert_eq!(
            s.event(Service::Auth, "user_registered"),
            "t-1.evt.auth.user_registered"
        );
        assert_eq!(s.all_events(), "t-1.evt.>");
        assert_eq!(s.stream_name(), "T_1_EVENTS");
    }
}
