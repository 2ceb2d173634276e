//! The given/when/then harness of every domain's decision tests, after
//! cqrs-es's `TestFramework` and disintegrate's `TestHarness`:
//!
//! ```text
//! Forum::given([post_created()])
//!     .when(Cmd::DeletePost { actor: OTHER, post_id: POST })
//!     .then_rejected(Rejection::Forbidden);
//! ```
//!
//! The given events are folded, in order, with the domain's own `apply`;
//! the command is decided by the domain's own decision; what it emits (or
//! why it refuses) is compared with what the test writes out. No I/O: a
//! decision reads only its state. A failure shows the given events, the
//! command, what was expected and what came out, and the first event that
//! differs.
//!
//! # Layout
//! - [`Decider`]: the one trait a domain implements to be driven here
//!   (state, events, command, error, `apply`, `decide`). Each domain's
//!   implementation sits in its decision tests, beside the cases, and is a
//!   thin adapter: a command enum whose variants are the prepared inputs
//!   of the domain's decision functions, and a `decide` that calls them.
//!   (The services' own prepared commands and their dispatch, `decide_one`
//!   in posts, are private to each `mod.rs` and not `Debug`; the adapters
//!   depend on `decide.rs` alone.)
//!   - `auth/decide.rs`: `Accounts`. The accounts decisions read rows
//!     (`auth.accounts`, `auth.sessions`), not a folded state, so the
//!     adapter keeps their in-memory twin, written by the events as
//!     `write_model` writes the rows.
//!   - `posts/decide.rs`: `Forum`, over the posts `World` and its `apply`.
//!   - `chat/decide.rs`: `Conversations`, over the chat `World` and its
//!     `apply`, plus each message at its log position (what `recorded`
//!     writes and `load` reads back: a position exists only once the event
//!     is in the log).
//!   - `notifications/decide.rs`: `Inboxes`; `notifications/derive.rs`:
//!     `Notifier`, which folds posts and chat events with `learn` and emits
//!     notifications (so a decider's given and emitted events may differ).
//! - [`Given`], [`When`]: the steps of one case.
//! - [`NOW_US`]: the fixed clock the adapters stamp commands with where
//!   the service would read the time, so expected events can be written
//!   out. Ids are fixed by the tests (`Uuid::from_u128`).
//!
//! # Why tests only
//! The module is `#[cfg(test)] pub(crate)`, not a `testing` feature: the
//! decisions and the commands they take live in this crate, and so do their
//! tests; the other crates test projections and HTTP, whose harnesses are
//! their own. Should another crate's tests ever decide commands, the module
//! can be made `pub` behind a feature.

use std::fmt::{Debug, Write as _};

/// The time, µs since the epoch, the adapters give commands whose time the
/// service would stamp (2023-11-14T22:13:20Z).
pub(crate) const NOW_US: i64 = 1_700_000_000_000_000;

/// A pure decision as the harness drives it: a state folded from events
/// with [`Decider::apply`] (which holds no rule), and [`Decider::decide`]
/// (which holds them all).
pub(crate) trait Decider: Sized {
    /// What the decision reads. Starts as `Default` (nothing happened yet).
    type State: Default + Debug;
    /// The events `given` lists, folded into the state by `apply`.
    type Event: Debug;
    /// What the decision is asked to do.
    type Command: Debug;
    /// The events an accepted command emits, written out in `then`. The
    /// domains emit their own `Event`; the notifications deriver folds the
    /// posts and chat events and emits notifications.
    type Emitted: Debug + PartialEq;
    /// Why a command is refused (`Infallible` for decisions that never
    /// refuse).
    type Error: Debug + PartialEq;

    /// Folds one event into the state: the domain's own `apply`.
    fn apply(state: &mut Self::State, event: &Self::Event);

    /// Decides one command on the state: the domain's own decision.
    ///
    /// # Errors
    /// The domain's refusal.
    fn decide(
        state: &Self::State,
        command: &Self::Command,
    ) -> Result<Vec<Self::Emitted>, Self::Error>;

    /// A case starting from nothing but `events`.
    fn given(events: impl IntoIterator<Item = Self::Event>) -> Given<Self> {
        Given {
            start: None,
            events: Vec::new(),
            state: Self::State::default(),
        }
        .and(events)
    }

    /// A case starting from `state`: what the service loads from elsewhere
    /// than the events (the deriver's nicknames, from `read.users`). More
    /// events follow with [`Given::and`].
    fn given_state(state: Self::State) -> Given<Self> {
        Given {
            start: Some(format!("{state:#?}")),
            events: Vec::new(),
            state,
        }
    }
}

/// The history of one case: the state its events build.
pub(crate) struct Given<D: Decider> {
    /// The starting state, when it was not the default (for the report).
    start: Option<String>,
    events: Vec<D::Event>,
    state: D::State,
}

impl<D: Decider> Given<D> {
    /// The same history followed by `events`, folded with `apply`.
    pub(crate) fn and(mut self, events: impl IntoIterator<Item = D::Event>) -> Self {
        for event in events {
            D::apply(&mut self.state, &event);
            self.events.push(event);
        }
        self
    }

    /// The state the history built, for the tests of `apply` itself
    /// (stream versions, counters).
    pub(crate) fn state(&self) -> &D::State {
        &self.state
    }

    /// Decides `command` on the history's state.
    pub(crate) fn when(self, command: D::Command) -> When<D> {
        let actual = D::decide(&self.state, &command);
        When {
            given: self,
            command,
            actual,
        }
    }
}

/// A decided case, waiting for what the test expects of it.
pub(crate) struct When<D: Decider> {
    given: Given<D>,
    command: D::Command,
    actual: Result<Vec<D::Emitted>, D::Error>,
}

impl<D: Decider> When<D> {
    /// Asserts the command was accepted and emitted exactly `expected`, in
    /// order.
    ///
    /// # Panics
    /// Otherwise, with the whole case.
    #[track_caller]
    pub(crate) fn then(self, expected: impl IntoIterator<Item = D::Emitted>) {
        let expected: Vec<D::Emitted> = expected.into_iter().collect();
        match &self.actual {
            Ok(events) if *events == expected => {}
            Ok(events) => {
                let difference = first_difference(&expected, events);
                self.fail(&accepted(&expected), Some(difference));
            }
            Err(_) => self.fail(&accepted(&expected), None),
        }
    }

    /// Asserts the command was accepted and changed nothing (no event).
    ///
    /// # Panics
    /// Otherwise, with the whole case.
    #[track_caller]
    pub(crate) fn then_nothing(self) {
        self.then([]);
    }

    /// Asserts the command was refused with `expected`.
    ///
    /// # Panics
    /// Otherwise, with the whole case.
    #[track_caller]
    pub(crate) fn then_rejected(self, expected: D::Error) {
        match &self.actual {
            Err(e) if *e == expected => {}
            _ => self.fail(&rejected(&expected), None),
        }
    }

    #[track_caller]
    fn fail(&self, expected: &str, difference: Option<String>) -> ! {
        let mut report = String::from("decision test failed\n");
        if let Some(start) = &self.given.start {
            section(&mut report, "given the state", start);
        }
        let given = if self.given.events.is_empty() {
            "(no events)".to_string()
        } else {
            numbered(&self.given.events)
        };
        section(&mut report, "given", &given);
        section(&mut report, "when", &format!("{:#?}", self.command));
        section(&mut report, "then (expected)", expected);
        let actual = match &self.actual {
            Ok(events) => accepted(events),
            Err(e) => rejected(e),
        };
        section(&mut report, "actual", &actual);
        if let Some(difference) = difference {
            report.push_str(&difference);
        }
        panic!("{report}");
    }
}

/// Where the first event that differs (or is missing on one side) is, and
/// the first lines of its pretty form that differ (line by line: a hint,
/// the whole events are above).
fn first_difference<T: Debug + PartialEq>(expected: &[T], actual: &[T]) -> String {
    let i = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let mut out = format!("first difference: event #{}\n", i + 1);
    if let (Some(e), Some(a)) = (expected.get(i), actual.get(i)) {
        let (e, a) = (format!("{e:#?}"), format!("{a:#?}"));
        for (e, a) in e.lines().zip(a.lines()).filter(|(e, a)| e != a).take(6) {
            let _ = writeln!(out, "    expected: {}", e.trim());
            let _ = writeln!(out, "    actual:   {}", a.trim());
        }
    }
    out
}

fn accepted<T: Debug>(events: &[T]) -> String {
    if events.is_empty() {
        "accepted, no events".to_string()
    } else {
        format!("accepted, emitting\n{}", numbered(events))
    }
}

fn rejected<E: Debug>(error: &E) -> String {
    format!("rejected: {error:#?}")
}

/// `#1 …`, `#2 …`, one pretty-printed item after the other.
fn numbered<T: Debug>(items: &[T]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let _ = writeln!(out, "#{} {item:#?}", i + 1);
    }
    out.trim_end().to_string()
}

/// `label:` then `body`, indented.
fn section(report: &mut String, label: &str, body: &str) {
    let _ = writeln!(report, "{label}:");
    for line in body.lines() {
        let _ = writeln!(report, "    {line}");
    }
}

mod tests {
    use std::convert::Infallible;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;

    /// A counter that refuses to go past ten.
    enum Counter {}

    #[derive(Debug, PartialEq)]
    struct Added(u32);

    #[derive(Debug, PartialEq)]
    struct TooMuch;

    impl Decider for Counter {
        type State = u32;
        type Event = Added;
        type Command = u32;
        type Emitted = Added;
        type Error = TooMuch;

        fn apply(state: &mut u32, event: &Added) {
            *state += event.0;
        }

        fn decide(state: &u32, add: &u32) -> Result<Vec<Added>, TooMuch> {
            match state + add {
                n if n > 10 => Err(TooMuch),
                _ if *add == 0 => Ok(Vec::new()),
                _ => Ok(vec![Added(*add)]),
            }
        }
    }

    /// Never refuses: for `given_state`.
    enum Echo {}

    impl Decider for Echo {
        type State = Vec<u32>;
        type Event = u32;
        type Command = ();
        type Emitted = u32;
        type Error = Infallible;

        fn apply(state: &mut Vec<u32>, event: &u32) {
            state.push(*event);
        }

        fn decide(state: &Vec<u32>, _: &()) -> Result<Vec<u32>, Infallible> {
            Ok(state.clone())
        }
    }

    fn failure(case: impl FnOnce()) -> String {
        let panic = catch_unwind(AssertUnwindSafe(case)).expect_err("the case fails");
        panic
            .downcast_ref::<String>()
            .cloned()
            .expect("a formatted message")
    }

    #[test]
    fn the_given_events_are_folded_with_apply_before_deciding() {
        Counter::given([Added(4), Added(5)])
            .when(1)
            .then([Added(1)]);
        Counter::given([Added(4), Added(5)])
            .when(2)
            .then_rejected(TooMuch);
        Counter::given([]).when(0).then_nothing();
        assert_eq!(*Counter::given([Added(4)]).and([Added(1)]).state(), 5);
    }

    #[test]
    fn a_case_can_start_from_a_state_the_events_do_not_build() {
        Echo::given_state(vec![7]).and([8]).when(()).then([7, 8]);
    }

    #[test]
    fn other_events_than_expected_fail_with_given_when_expected_actual_and_the_first_difference() {
        let report = failure(|| {
            Counter::given([Added(4)])
                .when(3)
                .then([Added(3), Added(1)])
        });
        let expected = "decision test failed\n\
            given:\n    #1 Added(\n        4,\n    )\n\
            when:\n    3\n\
            then (expected):\n    accepted, emitting\n    #1 Added(\n        3,\n    )\n    #2 Added(\n        1,\n    )\n\
            actual:\n    accepted, emitting\n    #1 Added(\n        3,\n    )\n\
            first difference: event #2\n";
        assert_eq!(report, expected);
    }

    #[test]
    fn a_rejection_where_events_were_expected_fails_showing_the_rejection() {
        let report = failure(|| Counter::given([Added(10)]).when(1).then_nothing());
        assert!(
            report.contains("then (expected):\n    accepted, no events\n"),
            "{report}"
        );
        assert!(
            report.contains("actual:\n    rejected: TooMuch\n"),
            "{report}"
        );
        assert!(!report.contains("first difference"), "{report}");
    }

    #[test]
    fn events_where_a_rejection_was_expected_fail_showing_the_events() {
        let report = failure(|| Counter::given([]).when(1).then_rejected(TooMuch));
        assert!(report.contains("given:\n    (no events)\n"), "{report}");
        assert!(
            report.contains("then (expected):\n    rejected: TooMuch\n"),
            "{report}"
        );
        assert!(
            report.contains("actual:\n    accepted, emitting\n    #1 Added("),
            "{report}"
        );
    }

    #[test]
    fn a_starting_state_is_shown_in_the_failure() {
        let report = failure(|| Echo::given_state(vec![7]).when(()).then([8]));
        assert!(
            report
                .starts_with("decision test failed\ngiven the state:\n    [\n        7,\n    ]\n"),
            "{report}"
        );
        assert!(
            report.ends_with("first difference: event #1\n    expected: 8\n    actual:   7\n"),
            "{report}"
        );
    }
}
