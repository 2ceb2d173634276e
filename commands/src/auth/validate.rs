//! Newtypes that parse API input once, at the edge. Each `parse` returns
//! the message to show in the error body's `fields`.

use forum_events::auth::Gender;

/// 3–32 of `A–Z a–z 0–9 _ . -`, case kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(String);

impl Nickname {
    /// Parses a nickname.
    ///
    /// # Errors
    /// A message for the `nickname` field.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let n = s.chars().count();
        if !(3..=32).contains(&n) {
            return Err("must be 3 to 32 characters");
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("may contain only letters, digits, '_', '.' and '-'");
        }
        Ok(Nickname(s.to_string()))
    }

    /// The nickname as given.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// One `@`, a dot in the domain, at most 254 characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an e-mail address.
    ///
    /// # Errors
    /// A message for the `email` field.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.chars().count() > 254 {
            return Err("must be at most 254 characters");
        }
        let mut parts = s.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("not an e-mail address");
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || !domain_ok || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("not an e-mail address");
        }
        Ok(Email(s.to_string()))
    }

    /// The address as given.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// 8–128 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// Parses a password.
    ///
    /// # Errors
    /// A message for the `password` field.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let n = s.chars().count();
        if !(8..=128).contains(&n) {
            return Err("must be 8 to 128 characters");
        }
        Ok(Password(s.to_string()))
    }

    /// The password.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A first or last name: 1–64 characters after trimming, stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a name.
    ///
    /// # Errors
    /// A message for the field.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        crate::text::check(s)?;
        let t = s.trim();
        let n = t.chars().count();
        if !(1..=64).contains(&n) {
            return Err("must be 1 to 64 characters after trimming");
        }
        Ok(PersonName(t.to_string()))
    }

    /// The trimmed name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An integer 13–130.
///
/// # Errors
/// A message for the `age` field.
pub fn age(n: i64) -> Result<u8, &'static str> {
    if (13..=130).contains(&n) {
        Ok(n as u8)
    } else {
        Err("must be an integer from 13 to 130")
    }
}

/// One of `female`, `male`, `other`, `unspecified`.
///
/// # Errors
/// A message for the `gender` field.
pub fn gender(s: &str) -> Result<Gender, &'static str> {
    Gender::parse(s).ok_or("must be one of female, male, other, unspecified")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_follow_the_rules() {
        assert!(Nickname::parse("ab").is_err());
        assert!(Nickname::parse("abc").is_ok());
        assert!(Nickname::parse("A_b.c-9").is_ok());
        assert!(Nickname::parse(&"x".repeat(32)).is_ok());
        assert!(Nickname::parse(&"x".repeat(33)).is_err());
        assert!(Nickname::parse("a b c").is_err());
        assert!(Nickname::parse("ab@c").is_err());
        assert!(Nickname::parse("héllo").is_err());
    }

    #[test]
    fn emails_follow_the_rules() {
        assert!(Email::parse("a@b.c").is_ok());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a@@b.c").is_err());
        assert!(Email::parse("a@b@c.d").is_err());
        assert!(Email::parse("@b.c").is_err());
        assert!(Email::parse("a b@c.d").is_err());
        assert!(Email::parse("a@.c").is_err());
        let long = format!("{}@example.org", "a".repeat(254 - 12));
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        assert!(Email::parse(&format!("a{long}")).is_err());
    }

    #[test]
    fn passwords_names_ages_and_genders_follow_the_rules() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        assert!(PersonName::parse("   ").is_err());
        assert_eq!(
            PersonName::parse("  Ada ").map(PersonName::into_inner),
            Ok("Ada".into())
        );
        assert!(PersonName::parse(&"n".repeat(65)).is_err());
        assert_eq!(
            PersonName::parse("Ad\u{0}a"),
            Err(crate::text::CONTROL_CHARACTER)
        );
        assert!(Email::parse("a\u{0}@b.c").is_err());
        assert_eq!(age(12), Err("must be an integer from 13 to 130"));
        assert_eq!(age(13), Ok(13));
        assert_eq!(age(130), Ok(130));
        assert!(age(131).is_err());
        assert!(gender("female").is_ok());
        assert!(gender("Female").is_err());
    }
}
