//! The write models refuse, command by command, what they cannot store: a
//! command whose text holds U+0000 is answered with a clear validation
//! error, leaves nothing in the log, and the other commands of its batch
//! commit. The gateway refuses such texts at the edge, so these tests talk
//! to the command service over NATS directly, as a gateway would.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::System;
use forum_commands::posts::decide::PostEdit;
use forum_commands::posts::{EditPost, PostsCommand, PostsData, SetReaction};
use forum_commands::wire::UNSTORABLE_TEXT;
use forum_commands::{Envelope, Rejection, Reply};
use forum_events::posts::{Reaction, TargetKind};
use forum_events::subject::Subjects;
use forum_events::Service;
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long anything here may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(60);

/// A command sent over NATS whose reply is awaited later.
struct Sent {
    command_id: Uuid,
    replies: async_nats::Subscriber,
}

/// Publishes `command` on the subject the gateway uses, with a reply inbox
/// of its own, so that several commands are in flight at once and reach
/// the service in the order sent.
async fn send(
    nats: &async_nats::Client,
    subjects: &Subjects,
    actor: Option<Uuid>,
    command: PostsCommand,
) -> Sent {
    let envelope = Envelope {
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        actor,
        command,
        timeout_ms: None,
        request_digest: None,
    };
    let inbox = nats.new_inbox();
    let replies = nats.subscribe(inbox.clone()).await.expect("subscribe");
    nats.publish_with_reply(
        subjects.command(Service::Posts, envelope.command.name()),
        inbox,
        Bytes::from(envelope.to_bytes()),
    )
    .await
    .expect("publish");
    nats.flush().await.expect("flush");
    Sent {
        command_id: envelope.command_id,
        replies,
    }
}

/// The reply to `sent`, within [`WITHIN`].
async fn reply(sent: &mut Sent) -> Reply<PostsData> {
    let msg = tokio::time::timeout(WITHIN, sent.replies.next())
        .await
        .expect("a reply in time")
        .expect("a reply");
    Reply::from_bytes(&msg.payload).expect("a reply that decodes")
}

fn edit(post_id: &str, title: Option<&str>, content: Option<&str>) -> PostsCommand {
    PostsCommand::EditPost(EditPost {
        post_id: uuid(post_id),
        edit: PostEdit {
            title: title.map(Into::into),
            content: content.map(Into::into),
            categories: None,
        },
    })
}

fn uuid(s: &str) -> Uuid {
    s.parse().expect("a uuid")
}

fn accepted(reply: &Reply<PostsData>) -> bool {
    matches!(reply, Reply::Accepted { .. })
}

async fn new_post(sys: &System, token: &str, title: &str) -> String {
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": title, "content": format!("content of {title}"), "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "create {title}: {body}");
    body["id"].as_str().expect("id").to_string()
}

/// Polls the post until `check` holds, within [`WITHIN`].
async fn post_where(sys: &System, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    common::eventually(WITHIN, what, || async {
        let (status, post) = sys.get(&format!("/api/posts/{id}"), None).await;
        (status == 200 && check(&post)).then_some(post)
    })
    .await
}

/// Waits until a connection of this database waits for an advisory lock:
/// the posts service's batch queued behind the append lock the test holds.
/// Until `n` batches wait for the append lock (with n batchers, all must
/// be plugged for the next commands to form one batch).
async fn until_batches_wait_for_the_lock(pool: &sqlx::PgPool, n: i64) {
    common::eventually(WITHIN, "batches waiting for the append lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'
               and wait_event = 'advisory'",
        )
        .fetch_one(pool)
        .await
        .expect("pg_stat_activity");
        (waiting >= n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_command_whose_text_cannot_be_stored_is_refused_and_the_rest_of_its_batch_commits() {
    // Two batchers, as `FORUM_BATCHES_IN_FLIGHT=2` runs them: the one that
    // waits for the append lock holds the queue, and takes everything
    // queued behind it once it has the lock, so the burst forms one batch
    // with the command that plugged it.
    let sys = System::up_with(&[("FORUM_BATCHES_IN_FLIGHT", "2")]).await;
    let (ada, ada_id) = sys.register("ada").await;
    let (_, bob_id) = sys.register("bob").await;
    let (ada_id, bob_id) = (uuid(&ada_id), uuid(&bob_id));
    let p1 = new_post(&sys, &ada, "one").await;
    let p2 = new_post(&sys, &ada, "two").await;
    let p3 = new_post(&sys, &ada, "three").await;
    let pool = sys.pool().await;
    let nats = async_nats::connect(common::NATS_URL).await.expect("nats");
    let subjects = Subjects::new(&sys.prefix);

    // Hold the posts log's append lock, so that the commands below queue up
    // and are decided as one batch when it is released: a first command
    // takes a batcher into its transaction, where it waits.
    let mut lock = pool.begin().await.expect("begin");
    forum_store::log::lock(&mut lock, Service::Posts)
        .await
        .expect("the append lock");
    let mut plug = send(
        &nats,
        &subjects,
        Some(ada_id),
        edit(&p1, Some("plug"), None),
    )
    .await;
    until_batches_wait_for_the_lock(&pool, 1).await;

    let mut burst = Vec::new();
    burst.push(
        send(
            &nats,
            &subjects,
            Some(ada_id),
            edit(&p2, Some("two, edited"), None),
        )
        .await,
    );
    let like = PostsCommand::SetReaction(SetReaction {
        target: TargetKind::Post,
        target_id: uuid(&p1),
        reaction: Reaction::Like,
    });
    burst.push(send(&nats, &subjects, Some(bob_id), like).await);
    let bad = edit(&p3, None, Some("a NUL \u{0} inside"));
    burst.push(send(&nats, &subjects, Some(ada_id), bad).await);
    // Decided after the refused edit of the same post: it must take the
    // version that one would have taken.
    burst.push(
        send(
            &nats,
            &subjects,
            Some(ada_id),
            edit(&p3, None, Some("three, fixed")),
        )
        .await,
    );
    burst.push(
        send(
            &nats,
            &subjects,
            Some(ada_id),
            edit(&p2, None, Some("two, rewritten")),
        )
        .await,
    );
    // Refused before any batch (no actor): once its reply is here, the
    // service has taken every command sent before it off the subject, and
    // those, which need no look-up to prepare, are queued for the batch.
    let mut sentinel = send(&nats, &subjects, None, edit(&p1, Some("x"), None)).await;
    assert_eq!(
        reply(&mut sentinel).await,
        Reply::Rejected(Rejection::Unauthorized)
    );
    lock.rollback().await.expect("release the lock");

    assert!(accepted(&reply(&mut plug).await));
    let mut replies = Vec::new();
    for sent in burst.iter_mut() {
        replies.push(reply(sent).await);
    }
    let unstorable = Reply::Rejected(Rejection::Validation(vec![(
        "content".into(),
        UNSTORABLE_TEXT.into(),
    )]));
    assert_eq!(replies[2], unstorable, "{replies:?}");
    for (i, r) in replies.iter().enumerate() {
        assert!(i == 2 || accepted(r), "command {i}: {r:?}");
    }

    // Nothing of the refused command is in the log; the others are, written
    // by one transaction (one batch), and the post's stream has no gap.
    let ids: Vec<Uuid> = burst.iter().map(|s| s.command_id).collect();
    let of_bad: i64 =
        sqlx::query_scalar("select count(*) from posts.events where causation_id = $1")
            .bind(ids[2])
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(of_bad, 0);
    let good: Vec<Uuid> = [0, 1, 3, 4].iter().map(|&i| ids[i]).collect();
    let (events, times): (i64, i64) = sqlx::query_as(
        "select count(*), count(distinct recorded_at) from posts.events
         where causation_id = any($1)",
    )
    .bind(&good)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!((events, times), (4, 1), "one event each, one transaction");
    let versions: Vec<i32> = sqlx::query_scalar(
        "select version from posts.events where stream_id = $1 order by version",
    )
    .bind(uuid(&p3))
    .fetch_all(&pool)
    .await
    .expect("versions");
    assert_eq!(versions, [1, 2]);

    // The accepted commands are visible through the API.
    post_where(&sys, &p2, "post two edited twice", |p| {
        p["title"] == "two, edited" && p["content"] == "two, rewritten"
    })
    .await;
    post_where(&sys, &p3, "post three fixed", |p| {
        p["content"] == "three, fixed"
    })
    .await;
    post_where(&sys, &p1, "post one liked", |p| {
        p["likes"] == 1 && p["title"] == "plug"
    })
    .await;

    // And the service keeps serving.
    let p4 = new_post(&sys, &ada, "four").await;
    post_where(&sys, &p4, "post four", |p| p["title"] == "four").await;
}

#[tokio::test]
async fn commands_whose_texts_cannot_be_stored_are_refused_alone_in_a_burst() {
    let sys = System::up_with(&[("FORUM_MAX_BATCH", "8")]).await;
    let (ada, ada_id) = sys.register("ada").await;
    let ada_id = uuid(&ada_id);
    let posts = [
        new_post(&sys, &ada, "one").await,
        new_post(&sys, &ada, "two").await,
        new_post(&sys, &ada, "three").await,
    ];
    let pool = sys.pool().await;
    let nats = async_nats::connect(common::NATS_URL).await.expect("nats");
    let subjects = Subjects::new(&sys.prefix);

    // 30 edits round-robin over the posts, every third one's title holding
    // a NUL, sent without waiting for any reply.
    let mut sent = Vec::new();
    for i in 0..30usize {
        let title = if i % 3 == 1 {
            format!("bad \u{0} {i}")
        } else {
            format!("good {i}")
        };
        let command = edit(&posts[i % 3], Some(&title), None);
        sent.push((i, send(&nats, &subjects, Some(ada_id), command).await));
    }
    let unstorable = Reply::Rejected(Rejection::Validation(vec![(
        "title".into(),
        UNSTORABLE_TEXT.into(),
    )]));
    let started = Instant::now();
    for (i, s) in sent.iter_mut() {
        let r = reply(s).await;
        if *i % 3 == 1 {
            assert_eq!(r, unstorable, "edit {i}");
        } else {
            assert!(accepted(&r), "edit {i}: {r:?}");
        }
    }
    assert!(started.elapsed() < WITHIN);

    // Post two only got bad edits; the others got ten good ones each, with
    // gap-free versions.
    for (post, edits) in posts.iter().zip([10, 0, 10]) {
        let versions: Vec<i32> = sqlx::query_scalar(
            "select version from posts.events where stream_id = $1 order by version",
        )
        .bind(uuid(post))
        .fetch_all(&pool)
        .await
        .expect("versions");
        assert_eq!(versions, (1..=1 + edits).collect::<Vec<i32>>(), "{post}");
    }
    // Commands are prepared concurrently, so which good edit is last is
    // not known; that one of them is, is.
    let edited = |p: &Value| p["title"].as_str().is_some_and(|t| t.starts_with("good "));
    post_where(&sys, &posts[0], "a good edit of one", edited).await;
    post_where(&sys, &posts[2], "a good edit of three", edited).await;
    let two = post_where(&sys, &posts[1], "two", |_| true).await;
    assert_eq!(two["title"], "two");
}
