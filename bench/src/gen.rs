//! Realistic event logs for the rebuild scenario, built from the real event
//! types (postcard payloads, [`NewEvent`]) with gap-free positions, stream
//! versions that move by one per event, and reaction counts that agree with
//! the reactions before them. Also the filler text and ids other scenarios
//! use.

use std::collections::HashMap;

use forum_events::auth::{AuthEvent, Gender, SessionStarted, UserRegistered};
use forum_events::posts::{
    CommentCreated, PostCreated, PostEvent, Reaction, ReactionSet, TargetKind,
};
use forum_events::{Metadata, NewEvent};
use uuid::Uuid;

use crate::copy;

/// A small, fast, seeded generator (xorshift64*), so runs are comparable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A random version-4 UUID.
    pub fn uuid(&mut self) -> Uuid {
        let hi = self.next_u64() as u128;
        let lo = self.next_u64() as u128;
        uuid::Builder::from_random_bytes(((hi << 64) | lo).to_be_bytes()).into_uuid()
    }
}

const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in \
reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint \
occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum. \
Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, \
totam rem aperiam, eaque ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae \
dicta sunt explicabo. Nemo enim ipsam voluptatem quia voluptas sit aspernatur aut odit aut fugit, \
sed quia consequuntur magni dolores eos qui ratione voluptatem sequi nesciunt. Neque porro \
quisquam est, qui dolorem ipsum quia dolor sit amet, consectetur, adipisci velit, sed quia non \
numquam eius modi tempora incidunt ut labore et dolore magnam aliquam quaerat voluptatem. Ut enim \
ad minima veniam, quis nostrum exercitationem ullam corporis suscipit laboriosam, nisi ut aliquid \
ex ea commodi consequatur? Quis autem vel eum iure reprehenderit qui in ea voluptate velit esse \
quam nihil molestiae consequatur, vel illum qui dolorem eum fugiat quo voluptas nulla pariatur?";

/// A slice of filler text (ASCII, no tab or newline) of `min..=max` bytes.
pub fn filler(rng: &mut Rng, min: usize, max: usize) -> &'static str {
    let max = max.min(LOREM.len()).max(1);
    let min = min.clamp(1, max);
    let len = min + rng.below((max - min + 1) as u64) as usize;
    let start = rng.below((LOREM.len() - len + 1) as u64) as usize;
    LOREM[start..start + len].trim_end_matches(' ')
}

/// The categories of the forum.
pub const CATEGORIES: [&str; 6] = ["general", "news", "help", "showcase", "off-topic", "meta"];

/// One to three categories.
pub fn categories(rng: &mut Rng) -> Vec<String> {
    let n = 1 + rng.below(3) as usize;
    let first = rng.below(CATEGORIES.len() as u64) as usize;
    (0..n)
        .map(|i| CATEGORIES[(first + i) % CATEGORIES.len()].to_string())
        .collect()
}

/// How many events of each kind the logs get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Users: one `user_registered` and one `session_started` each.
    pub users: usize,
    /// `post_created`.
    pub posts: usize,
    /// `comment_created`.
    pub comments: usize,
    /// `reaction_set`.
    pub reactions: usize,
}

impl Mix {
    /// The mix of `total` events: 2 % registrations, 2 % sessions, then
    /// posts, comments and reactions as 5 : 10 : 9 (for one million:
    /// 20,000 + 20,000 + 200,000 + 400,000 + 360,000).
    pub fn of_total(total: usize) -> Mix {
        let users = (total / 50).max(10);
        let rest = total.saturating_sub(2 * users).max(24);
        let posts = rest * 5 / 24;
        let comments = rest * 10 / 24;
        Mix {
            users,
            posts,
            comments,
            reactions: rest - posts - comments,
        }
    }

    /// Events in the auth log.
    pub fn auth_events(&self) -> usize {
        2 * self.users
    }

    /// Events in the posts log.
    pub fn posts_events(&self) -> usize {
        self.posts + self.comments + self.reactions
    }

    /// Every event.
    pub fn total(&self) -> usize {
        self.auth_events() + self.posts_events()
    }
}

/// An event with its position and metadata, ready for its log.
#[derive(Debug, Clone)]
pub struct Row {
    /// Position in its log (1, 2, 3 …).
    pub position: i64,
    /// The event.
    pub event: NewEvent,
    /// Its metadata.
    pub metadata: Metadata,
}

/// The columns of `<service>.events`, in the order [`encode_row`] writes.
pub const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, \
schema_version, payload, correlation_id, causation_id, actor, recorded_at";

/// Appends `row` as one `COPY` text line of `<service>.events`.
pub fn encode_row(out: &mut String, row: &Row) {
    use std::fmt::Write as _;
    let _ = write!(out, "{}", row.position);
    copy::tab(out);
    copy::uuid(out, row.event.stream_id);
    let _ = write!(out, "\t{}\t", row.event.version);
    copy::uuid(out, row.event.event_id);
    copy::tab(out);
    copy::text(out, row.event.event_type);
    let _ = write!(out, "\t{}\t", row.event.schema_version);
    copy::bytea(out, &row.event.payload);
    copy::tab(out);
    copy::uuid(out, row.metadata.correlation_id);
    copy::tab(out);
    copy::uuid(out, row.metadata.causation_id);
    copy::tab(out);
    match row.metadata.actor {
        Some(a) => copy::uuid(out, a),
        None => out.push_str("\\N"),
    }
    copy::tab(out);
    copy::time(out, row.metadata.recorded_at_us);
    copy::end(out);
}

/// The users every log refers to.
#[derive(Debug, Clone)]
pub struct People {
    /// Their ids.
    pub ids: Vec<Uuid>,
    /// Their nicknames.
    pub nicknames: Vec<String>,
}

impl People {
    /// `n` users named `r1_<i>`.
    pub fn new(n: usize) -> People {
        People {
            ids: (0..n).map(|_| Uuid::now_v7()).collect(),
            nicknames: (0..n).map(|i| format!("r1_{i}")).collect(),
        }
    }
}

/// What the projections must hold after the logs are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    /// Rows of `users`.
    pub users: i64,
    /// Rows of `sessions`.
    pub sessions: i64,
    /// Rows of `posts`.
    pub posts: i64,
    /// Rows of `comments`, and the sum of `posts.comment_count`.
    pub comments: i64,
    /// Rows of `reactions` (reactions not withdrawn).
    pub reactions: i64,
    /// Sum of `likes` over posts and comments.
    pub likes: i64,
    /// Sum of `dislikes` over posts and comments.
    pub dislikes: i64,
}

fn metadata(actor: Uuid, at_us: i64) -> Metadata {
    let id = Uuid::now_v7();
    Metadata {
        correlation_id: id,
        causation_id: id,
        actor: Some(actor),
        recorded_at_us: at_us,
    }
}

/// The auth log: for each user a `user_registered` (stream = user,
/// version 1) and a `session_started` (stream = session, version 1).
pub fn auth_log<'a>(
    people: &'a People,
    start_us: i64,
    rng: &mut Rng,
) -> impl Iterator<Item = Row> + 'a {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut salt = String::new();
    for _ in 0..22 {
        salt.push(B64[rng.below(64) as usize] as char);
    }
    let hash = format!(
        "$argon2id$v=19$m=19456,t=2,p=1${salt}$wS0nBGd4hfCqiU2rS5VOIcH0tE7KcHcmHTu8MXgVTYc"
    );
    people
        .ids
        .iter()
        .enumerate()
        .flat_map(move |(i, &user_id)| {
            let at = start_us + i as i64 * 5_000;
            let nickname = people.nicknames[i].clone();
            let registered = AuthEvent::UserRegistered(UserRegistered {
                user_id,
                email: format!("{nickname}@example.org"),
                nickname,
                password_hash: hash.clone(),
                first_name: "Bench".into(),
                last_name: "User".into(),
                age: 30,
                gender: Gender::Unspecified,
                registered_at_us: at,
                locale: Some("en-GB".into()),
            });
            let session_id = Uuid::now_v7();
            let session = AuthEvent::SessionStarted(SessionStarted {
                session_id,
                user_id,
                expires_at_us: at + 7 * 24 * 3_600_000_000,
            });
            let meta = metadata(user_id, at);
            [
                Row {
                    position: 2 * i as i64 + 1,
                    event: NewEvent::new(user_id, 1, Uuid::now_v7(), &registered),
                    metadata: meta.clone(),
                },
                Row {
                    position: 2 * i as i64 + 2,
                    event: NewEvent::new(session_id, 1, Uuid::now_v7(), &session),
                    metadata: meta,
                },
            ]
        })
}

struct PostState {
    id: Uuid,
    version: u32,
    likes: u32,
    dislikes: u32,
}

struct CommentState {
    id: Uuid,
    post: usize,
    likes: u32,
    dislikes: u32,
}

/// The posts log: posts, comments on recent posts, reactions on recent
/// posts and comments, interleaved at random in proportion to what is
/// left; every event in its post's stream.
pub struct PostsLog<'a> {
    people: &'a People,
    rng: Rng,
    left: (usize, usize, usize),
    posts: Vec<PostState>,
    comments: Vec<CommentState>,
    /// (is comment, target index, user index) → reaction.
    reactions: HashMap<(bool, u32, u32), Reaction>,
    position: i64,
    clock_us: i64,
    run_length: u64,
    last: Option<Kind>,
}

/// The kinds of events of the posts log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Post,
    Comment,
    Reaction,
}

impl<'a> PostsLog<'a> {
    /// The log of `mix` by `people`, times from `start_us`. With
    /// `run_length` 1 the kinds are interleaved at random (a live forum);
    /// with more, the kind of the previous event is kept with probability
    /// 1 − 1/`run_length` (runs of that mean length, a diagnostic).
    pub fn new(
        people: &'a People,
        mix: Mix,
        start_us: i64,
        seed: u64,
        run_length: u64,
    ) -> PostsLog<'a> {
        PostsLog {
            run_length: run_length.max(1),
            last: None,
            people,
            rng: Rng::new(seed),
            left: (mix.posts, mix.comments, mix.reactions),
            posts: Vec::with_capacity(mix.posts),
            comments: Vec::with_capacity(mix.comments),
            reactions: HashMap::new(),
            position: 0,
            clock_us: start_us,
        }
    }

    /// What the projections must hold once every event so far is applied.
    pub fn expected(&self) -> Expected {
        let mut e = Expected {
            posts: self.posts.len() as i64,
            comments: self.comments.len() as i64,
            reactions: self.reactions.len() as i64,
            ..Expected::default()
        };
        for p in &self.posts {
            e.likes += p.likes as i64;
            e.dislikes += p.dislikes as i64;
        }
        for c in &self.comments {
            e.likes += c.likes as i64;
            e.dislikes += c.dislikes as i64;
        }
        e
    }

    fn recent(&mut self, len: usize) -> usize {
        len - 1 - self.rng.below(len.min(5_000) as u64) as usize
    }

    fn user(&mut self) -> (usize, Uuid, String) {
        let u = self.rng.below(self.people.ids.len() as u64) as usize;
        (u, self.people.ids[u], self.people.nicknames[u].clone())
    }

    fn post(&mut self) -> (usize, PostEvent) {
        let (_, author_id, author_nickname) = self.user();
        let post_id = Uuid::now_v7();
        self.posts.push(PostState {
            id: post_id,
            version: 0,
            likes: 0,
            dislikes: 0,
        });
        let title = filler(&mut self.rng, 20, 80).to_string();
        let content = filler(&mut self.rng, 100, 600).to_string();
        let categories = categories(&mut self.rng);
        (
            self.posts.len() - 1,
            PostEvent::PostCreated(PostCreated {
                post_id,
                author_id,
                author_nickname,
                title,
                content,
                categories,
                created_at_us: self.clock_us,
            }),
        )
    }

    fn comment(&mut self) -> (usize, PostEvent) {
        let post = self.recent(self.posts.len());
        let (_, author_id, author_nickname) = self.user();
        let comment_id = Uuid::now_v7();
        self.comments.push(CommentState {
            id: comment_id,
            post,
            likes: 0,
            dislikes: 0,
        });
        let content = filler(&mut self.rng, 40, 300).to_string();
        (
            post,
            PostEvent::CommentCreated(CommentCreated {
                comment_id,
                post_id: self.posts[post].id,
                author_id,
                author_nickname,
                content,
                created_at_us: self.clock_us,
            }),
        )
    }

    fn reaction(&mut self) -> (usize, PostEvent) {
        let on_comment = !self.comments.is_empty() && self.rng.below(2) == 0;
        let target = if on_comment {
            self.recent(self.comments.len())
        } else {
            self.recent(self.posts.len())
        };
        let (u, user_id, _) = self.user();
        let key = (on_comment, target as u32, u as u32);
        let old = self.reactions.get(&key).copied().unwrap_or_default();
        let coin = self.rng.below(10);
        let new = match old {
            Reaction::None if coin < 8 => Reaction::Like,
            Reaction::None => Reaction::Dislike,
            Reaction::Like if coin < 5 => Reaction::None,
            Reaction::Like => Reaction::Dislike,
            Reaction::Dislike if coin < 5 => Reaction::None,
            Reaction::Dislike => Reaction::Like,
        };
        if new == Reaction::None {
            self.reactions.remove(&key);
        } else {
            self.reactions.insert(key, new);
        }
        let (post, target_id, counts) = if on_comment {
            let c = &mut self.comments[target];
            (c.post, c.id, (&mut c.likes, &mut c.dislikes))
        } else {
            let p = &mut self.posts[target];
            (target, p.id, (&mut p.likes, &mut p.dislikes))
        };
        let (likes, dislikes) = counts;
        match old {
            Reaction::Like => *likes -= 1,
            Reaction::Dislike => *dislikes -= 1,
            Reaction::None => {}
        }
        match new {
            Reaction::Like => *likes += 1,
            Reaction::Dislike => *dislikes += 1,
            Reaction::None => {}
        }
        let (likes, dislikes) = (*likes, *dislikes);
        (
            post,
            PostEvent::ReactionSet(ReactionSet {
                target: if on_comment {
                    TargetKind::Comment
                } else {
                    TargetKind::Post
                },
                target_id,
                post_id: self.posts[post].id,
                user_id,
                reaction: new,
                likes,
                dislikes,
                at_us: self.clock_us,
            }),
        )
    }
}

impl Iterator for PostsLog<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let (p, c, r) = self.left;
        if p + c + r == 0 || (self.posts.is_empty() && p == 0) {
            return None;
        }
        self.clock_us += 2_000;
        let left_of = |k: Kind| match k {
            Kind::Post => p,
            Kind::Comment => c,
            Kind::Reaction => r,
        };
        let keep = self
            .last
            .filter(|k| left_of(*k) > 0 && self.run_length > 1)
            .filter(|_| self.rng.below(self.run_length) != 0);
        let kind = if self.posts.is_empty() {
            Kind::Post
        } else if let Some(k) = keep {
            k
        } else {
            let x = self.rng.below((p + c + r) as u64) as usize;
            if x < p {
                Kind::Post
            } else if x < p + c {
                Kind::Comment
            } else {
                Kind::Reaction
            }
        };
        self.last = Some(kind);
        let (post, event) = match kind {
            Kind::Post => {
                self.left.0 -= 1;
                self.post()
            }
            Kind::Comment => {
                self.left.1 -= 1;
                self.comment()
            }
            Kind::Reaction => {
                self.left.2 -= 1;
                self.reaction()
            }
        };
        let state = &mut self.posts[post];
        state.version += 1;
        self.position += 1;
        let actor = match &event {
            PostEvent::PostCreated(e) => e.author_id,
            PostEvent::CommentCreated(e) => e.author_id,
            PostEvent::ReactionSet(e) => e.user_id,
            _ => Uuid::nil(),
        };
        Some(Row {
            position: self.position,
            event: NewEvent::new(state.id, state.version, Uuid::now_v7(), &event),
            metadata: metadata(actor, self.clock_us),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forum_events::EventSet;
    use std::collections::HashMap;

    #[test]
    fn a_million_is_split_as_documented() {
        let m = Mix::of_total(1_000_000);
        assert_eq!(
            (m.users, m.posts, m.comments, m.reactions),
            (20_000, 200_000, 400_000, 360_000)
        );
        assert_eq!(m.total(), 1_000_000);
    }

    #[test]
    fn the_posts_log_is_gap_free_versioned_and_its_counts_agree() {
        let people = People::new(30);
        let mix = Mix {
            users: 30,
            posts: 40,
            comments: 120,
            reactions: 900,
        };
        let mut log = PostsLog::new(&people, mix, 1_000_000, 7, 1);
        let rows: Vec<Row> = log.by_ref().collect();
        assert_eq!(rows.len(), mix.posts_events());
        let mut versions: HashMap<Uuid, u32> = HashMap::new();
        let mut counts: HashMap<Uuid, (u32, u32)> = HashMap::new();
        let mut mine: HashMap<(Uuid, Uuid), Reaction> = HashMap::new();
        let mut kinds = (0, 0, 0);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.position, i as i64 + 1);
            let v = versions.entry(row.event.stream_id).or_default();
            *v += 1;
            assert_eq!(row.event.version, *v, "versions move by one per stream");
            let e =
                PostEvent::decode(row.event.event_type, 1, &row.event.payload).expect("decodes");
            assert_eq!(e.post_id(), row.event.stream_id);
            match e {
                PostEvent::PostCreated(_) => kinds.0 += 1,
                PostEvent::CommentCreated(_) => kinds.1 += 1,
                PostEvent::ReactionSet(r) => {
                    kinds.2 += 1;
                    let old = mine
                        .insert((r.target_id, r.user_id), r.reaction)
                        .unwrap_or_default();
                    assert_ne!(old, r.reaction, "a reaction event changes something");
                    let c = counts.entry(r.target_id).or_default();
                    match old {
                        Reaction::Like => c.0 -= 1,
                        Reaction::Dislike => c.1 -= 1,
                        Reaction::None => {}
                    }
                    match r.reaction {
                        Reaction::Like => c.0 += 1,
                        Reaction::Dislike => c.1 += 1,
                        Reaction::None => {}
                    }
                    assert_eq!((r.likes, r.dislikes), *c, "counts after the change");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(kinds, (mix.posts, mix.comments, mix.reactions));
        let expected = log.expected();
        let live = mine.values().filter(|r| **r != Reaction::None).count() as i64;
        assert_eq!(expected.reactions, live);
        let likes: u32 = counts.values().map(|c| c.0).sum();
        assert_eq!(expected.likes, likes as i64);
        assert_eq!(expected.posts, 40);
    }

    #[test]
    fn a_longer_run_length_groups_events_of_one_kind() {
        let people = People::new(10);
        let mix = Mix {
            users: 10,
            posts: 500,
            comments: 1000,
            reactions: 900,
        };
        let runs = |run_length| {
            let rows: Vec<Row> = PostsLog::new(&people, mix, 0, 9, run_length).collect();
            assert_eq!(rows.len(), mix.posts_events());
            1 + rows
                .windows(2)
                .filter(|w| w[0].event.event_type != w[1].event.event_type)
                .count()
        };
        let (mixed, grouped) = (runs(1), runs(50));
        assert!(mixed > 1000, "interleaved: {mixed} runs");
        assert!(grouped < 200, "grouped: {grouped} runs");
    }

    #[test]
    fn the_auth_log_has_a_registration_and_a_session_per_user() {
        let people = People::new(3);
        let rows: Vec<Row> = auth_log(&people, 0, &mut Rng::new(1)).collect();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[4].position, 5);
        assert_eq!(rows[0].event.event_type, "user_registered");
        assert_eq!(rows[1].event.event_type, "session_started");
        let mut line = String::new();
        encode_row(&mut line, &rows[0]);
        assert_eq!(line.matches('\t').count(), 10, "{line}");
        assert!(line.ends_with("+00\n"));
    }

    #[test]
    fn filler_stays_within_bounds() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let s = filler(&mut rng, 20, 80);
            assert!(!s.is_empty() && s.len() <= 80);
            assert!(!s.contains('\t') && !s.contains('\n'));
        }
        assert!(!categories(&mut rng).is_empty());
    }
}
