//! Helpers shared by the golden-vector tests of every service's events.

use uuid::Uuid;

/// A UUID whose 16 bytes are all `n`.
pub fn id(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a lowercase hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
