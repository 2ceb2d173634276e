//! The live feed's cursor: how far a socket has been served in each log
//! whose events become durable frames (posts, chat, notifications).
//!
//! Positions are gap-free per log, so "everything after these three
//! positions that concerns me" is exact. On the wire the cursor is opaque:
//! base64url of `v1.<posts>.<chat>.<notifications>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use forum_events::Service;

/// The logs a cursor covers, in its order.
pub const LOGS: [Service; 3] = [Service::Posts, Service::Chat, Service::Notifications];

/// Positions per log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Last position served per log of [`LOGS`].
    pub positions: [u64; 3],
}

impl Cursor {
    fn slot(service: Service) -> Option<usize> {
        LOGS.iter().position(|s| *s == service)
    }

    /// The position of `service` (0 for a log the cursor does not cover).
    pub fn get(&self, service: Service) -> u64 {
        Self::slot(service).map_or(0, |i| self.positions[i])
    }

    /// Sets the position of `service` (ignored for other logs).
    pub fn set(&mut self, service: Service, position: u64) {
        if let Some(i) = Self::slot(service) {
            self.positions[i] = position;
        }
    }

    /// Whether every position is at or below `other`'s.
    pub fn within(&self, other: &Cursor) -> bool {
        self.positions
            .iter()
            .zip(other.positions)
            .all(|(a, b)| *a <= b)
    }

    /// The opaque wire form.
    pub fn encode(&self) -> String {
        let [p, c, n] = self.positions;
        URL_SAFE_NO_PAD.encode(format!("v1.{p}.{c}.{n}"))
    }

    /// Parses the wire form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut parts = text.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let mut positions = [0u64; 3];
        for p in &mut positions {
            let part = parts.next()?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *p = part.parse().ok()?;
        }
        parts.next().is_none().then_some(Cursor { positions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_wire_form() {
        let c = Cursor {
            positions: [12, 0, 7_000_000_000],
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        for bad in [
            "",
            "!!",
            "djEuMS4y", // v1.1.2
            &URL_SAFE_NO_PAD.encode("v2.1.2.3"),
            &URL_SAFE_NO_PAD.encode("v1.1.2.3.4"),
            &URL_SAFE_NO_PAD.encode("v1.1.-2.3"),
            &URL_SAFE_NO_PAD.encode("v1.1..3"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn positions_are_kept_per_log() {
        let mut c = Cursor::default();
        c.set(Service::Chat, 5);
        c.set(Service::Auth, 9);
        assert_eq!(c.get(Service::Chat), 5);
        assert_eq!(c.get(Service::Auth), 0);
        assert!(c.within(&Cursor {
            positions: [0, 5, 0]
        }));
        assert!(!c.within(&Cursor {
            positions: [9, 4, 9]
        }));
    }
}
