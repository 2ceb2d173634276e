//! WebSocket client frames: any text is a typing frame or refused with a
//! documented code (`malformed_json`, `validation_failed`).
#![no_main]

use forum_gateway::live::frames::{parse_client, ClientFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client(text) {
        Ok(ClientFrame::Typing { .. }) => {
            let v: serde_json::Value =
                serde_json::from_str(text).expect("accepted frames are JSON");
            assert_eq!(v["type"].as_str(), Some("typing"));
        }
        Err((code, message)) => {
            assert!(code == "malformed_json" || code == "validation_failed");
            assert!(!message.is_empty() && message.len() < 200);
        }
    }
});
