//! Parsing chat input once, at the edge.

/// The most characters a message holds.
pub const MAX_MESSAGE: usize = 2_000;

/// A message's content: 1–2000 characters, not blank (stored as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    /// # Errors
    /// Blank (empty after trimming), or longer than 2000 characters.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        crate::text::check(s)?;
        if s.trim().is_empty() {
            return Err("must not be empty");
        }
        if s.chars().count() > MAX_MESSAGE {
            return Err("must be at most 2000 characters");
        }
        Ok(MessageContent(s.to_string()))
    }

    /// The content.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_or_long_messages_are_refused_and_others_kept_as_given() {
        assert!(MessageContent::parse("").is_err());
        assert!(MessageContent::parse(" \n\t ").is_err());
        assert_eq!(
            MessageContent::parse(" hi ").map(MessageContent::into_inner),
            Ok(" hi ".to_string())
        );
        assert!(MessageContent::parse(&"é".repeat(2_000)).is_ok());
        assert!(MessageContent::parse(&"é".repeat(2_001)).is_err());
        assert_eq!(
            MessageContent::parse("D\u{0}"),
            Err(crate::text::CONTROL_CHARACTER)
        );
        assert!(MessageContent::parse("line\nbreak\ttab").is_ok());
    }
}
