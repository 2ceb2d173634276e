//! Parsing forum input once, at the edge.

/// The fixed set of categories: (slug, name).
pub const CATEGORIES: [(&str, &str); 6] = [
    ("general", "General"),
    ("news", "News"),
    ("help", "Help"),
    ("showcase", "Showcase"),
    ("off-topic", "Off-topic"),
    ("meta", "Meta"),
];

fn text(s: &str, max: usize, trim: bool) -> Result<String, &'static str> {
    crate::text::check(s)?;
    if s.trim().is_empty() {
        return Err("must not be empty");
    }
    let value = if trim { s.trim() } else { s };
    if value.chars().count() > max {
        return Err(match max {
            200 => "must be at most 200 characters",
            5000 => "must be at most 5000 characters",
            _ => "must be at most 20000 characters",
        });
    }
    Ok(value.to_string())
}

/// A post title: 1–200 characters after trimming (stored trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// # Errors
    /// Empty after trimming, or too long.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        text(s, 200, true).map(Title)
    }
    /// The title.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A post's content: 1–20000 characters, not blank (stored as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostContent(String);

impl PostContent {
    /// # Errors
    /// Blank, or too long.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        text(s, 20_000, false).map(PostContent)
    }
    /// The content.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A comment's content: 1–5000 characters, not blank (stored as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentContent(String);

impl CommentContent {
    /// # Errors
    /// Blank, or too long.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        text(s, 5_000, false).map(CommentContent)
    }
    /// The content.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// 1–5 known category slugs, deduplicated, in the order first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories(Vec<String>);

impl Categories {
    /// # Errors
    /// An unknown slug, none, or more than five distinct ones.
    pub fn parse<'a>(slugs: impl IntoIterator<Item = &'a str>) -> Result<Self, &'static str> {
        let mut out: Vec<String> = Vec::new();
        for slug in slugs {
            if !CATEGORIES.iter().any(|(s, _)| *s == slug) {
                return Err("unknown category");
            }
            if !out.iter().any(|s| s == slug) {
                out.push(slug.to_string());
            }
        }
        match out.len() {
            0 => Err("at least one category is required"),
            1..=5 => Ok(Categories(out)),
            _ => Err("at most 5 categories"),
        }
    }
    /// The slugs.
    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_or_long_texts_are_refused() {
        assert!(Title::parse("   ").is_err());
        assert_eq!(
            Title::parse("  Hi ").map(Title::into_inner),
            Ok("Hi".into())
        );
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(Title::parse(&"é".repeat(201)).is_err());
        assert!(PostContent::parse("\n\t").is_err());
        assert!(PostContent::parse(&"x".repeat(20_001)).is_err());
        assert!(CommentContent::parse(&"x".repeat(5_000)).is_ok());
        assert!(CommentContent::parse(&"x".repeat(5_001)).is_err());
        use crate::text::CONTROL_CHARACTER;
        assert_eq!(Title::parse("a\u{0}"), Err(CONTROL_CHARACTER));
        assert_eq!(PostContent::parse("D\u{0}"), Err(CONTROL_CHARACTER));
        assert_eq!(CommentContent::parse("\u{1b}[31m"), Err(CONTROL_CHARACTER));
        assert!(CommentContent::parse("a\r\nb").is_ok());
    }

    #[test]
    fn categories_are_known_deduplicated_and_one_to_five() {
        assert_eq!(
            Categories::parse(["news", "meta", "news"]).map(Categories::into_inner),
            Ok(vec!["news".to_string(), "meta".to_string()])
        );
        assert!(Categories::parse(["nope"]).is_err());
        assert!(Categories::parse([]).is_err());
        assert!(
            Categories::parse(["general", "news", "help", "showcase", "off-topic", "meta"])
                .is_err()
        );
    }
}
