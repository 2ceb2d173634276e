//! The forum end to end: every posts, comments and reactions row of API.md,
//! bad inputs included.

mod common;

use std::collections::HashSet;

use common::System;
use reqwest::Method;
use serde_json::{json, Value};

async fn new_post(sys: &System, token: &str, title: &str, categories: &[&str]) -> Value {
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": title, "content": format!("content of {title}"), "categories": categories}),
        )
        .await;
    assert_eq!(status, 201, "create {title}: {body}");
    body
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["title"].as_str().expect("title").to_string())
        .collect()
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.')
}

#[tokio::test]
async fn categories_are_the_fixed_seeded_set() {
    let sys = System::up().await;
    let (status, body) = sys.get("/api/categories", None).await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            assert!(c["name"].is_string());
            c["slug"].as_str().expect("slug")
        })
        .collect();
    for s in ["general", "news", "help", "showcase", "off-topic", "meta"] {
        assert!(slugs.contains(&s), "{slugs:?} lacks {s}");
    }
}

#[tokio::test]
async fn a_post_is_created_read_edited_and_deleted() {
    let sys = System::up().await;
    let (ada, ada_id) = sys.register("ada").await;
    let (status, post) = sys
        .post(
            "/api/posts",
            Some(&ada),
            json!({"title": "  Hello  ", "content": "World", "categories": ["news", "meta", "news"]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["title"], "Hello");
    assert_eq!(post["content"], "World");
    assert_eq!(post["categories"], json!(["news", "meta"]));
    assert_eq!(post["author"], json!({"id": ada_id, "nickname": "ada"}));
    assert!(is_time(&post["created_at"]), "{post}");
    assert_eq!(post["edited_at"], Value::Null);
    assert_eq!(post["comment_count"], 0);
    assert_eq!(post["likes"], 0);
    assert_eq!(post["dislikes"], 0);
    assert_eq!(post["my_reaction"], Value::Null);
    assert_eq!(post.as_object().expect("object").len(), 11);
    let pid = id(&post);

    // Read-your-writes: the list has it at once, for anyone.
    let (status, list) = sys.get("/api/posts", None).await;
    assert_eq!(status, 200);
    assert_eq!(titles(&list), ["Hello"]);
    assert_eq!(list["next_cursor"], Value::Null);
    let (status, one) = sys.get(&format!("/api/posts/{pid}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(one, post);

    // Edit sets edited_at and keeps the rest.
    let (status, edited) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{pid}"),
            Some(&ada),
            Some(json!({"content": "Changed"})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["content"], "Changed");
    assert_eq!(edited["title"], "Hello");
    assert!(is_time(&edited["edited_at"]), "{edited}");
    let (_, edited) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{pid}"),
            Some(&ada),
            Some(json!({"categories": ["help"], "title": "Hi"})),
        )
        .await;
    assert_eq!(edited["categories"], json!(["help"]));
    assert_eq!(edited["title"], "Hi");
    let (_, by_cat) = sys.get("/api/posts?category=help", None).await;
    assert_eq!(titles(&by_cat), ["Hi"]);
    let (_, by_old_cat) = sys.get("/api/posts?category=news", None).await;
    assert!(titles(&by_old_cat).is_empty());

    // Delete: 404 afterwards, omitted from lists, no comments or reactions.
    let (status, body) = sys
        .call(
            Method::DELETE,
            &format!("/api/posts/{pid}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(sys.get(&format!("/api/posts/{pid}"), None).await.0, 404);
    let (_, list) = sys.get("/api/posts", None).await;
    assert!(titles(&list).is_empty());
    let (_, by_cat) = sys.get("/api/posts?category=help", None).await;
    assert!(titles(&by_cat).is_empty());
    let (status, body) = sys
        .post(
            &format!("/api/posts/{pid}/comments"),
            Some(&ada),
            json!({"content": "late"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        sys.get(&format!("/api/posts/{pid}/comments"), None).await.0,
        404
    );
    let (status, _) = sys
        .call(
            Method::PUT,
            &format!("/api/posts/{pid}/reaction"),
            Some(&ada),
            Some(json!({"reaction": "like"})),
        )
        .await;
    assert_eq!(status, 404);
    for (method, body) in [
        (Method::PATCH, Some(json!({"title": "again"}))),
        (Method::DELETE, None),
    ] {
        let (status, _) = sys
            .call(method, &format!("/api/posts/{pid}"), Some(&ada), body)
            .await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn bad_posts_are_refused_naming_every_field() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(&ada),
            json!({"title": "   ", "content": "x".repeat(20_001), "categories": ["nope"]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields = body["error"]["fields"].as_object().expect("fields");
    for f in ["title", "content", "categories"] {
        assert!(fields.contains_key(f), "{f} not named: {body}");
    }
    for (bad, field) in [
        (json!({"content": "c", "categories": ["news"]}), "title"),
        (
            json!({"title": "t".repeat(201), "content": "c", "categories": ["news"]}),
            "title",
        ),
        (
            json!({"title": "t", "content": " \n", "categories": ["news"]}),
            "content",
        ),
        (
            json!({"title": "t", "content": "c", "categories": []}),
            "categories",
        ),
        (
            json!({"title": "t", "content": "c", "categories": "news"}),
            "categories",
        ),
        (
            json!({"title": 5, "content": "c", "categories": ["news"]}),
            "title",
        ),
        (
            json!({"title": "t", "content": "c",
                   "categories": ["general", "news", "help", "showcase", "off-topic", "meta"]}),
            "categories",
        ),
    ] {
        let (status, body) = sys.post("/api/posts", Some(&ada), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["fields"].get(field).is_some(),
            "{bad}: {body}"
        );
    }
    // Limits are inclusive, in characters.
    let (status, _) = sys
        .post(
            "/api/posts",
            Some(&ada),
            json!({"title": "é".repeat(200), "content": "c", "categories": ["news"]}),
        )
        .await;
    assert_eq!(status, 201);
    // Without login: 401.
    let (status, body) = sys
        .post(
            "/api/posts",
            None,
            json!({"title": "t", "content": "c", "categories": ["news"]}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    // An empty PATCH names the body.
    let post = new_post(&sys, &ada, "p", &["news"]).await;
    let (status, body) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{}", id(&post)),
            Some(&ada),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn only_the_author_edits_or_deletes_and_unknown_ids_are_404() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ada, "mine", &["general"]).await;
    let pid = id(&post);
    let (status, body) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{pid}"),
            Some(&bob),
            Some(json!({"title": "theirs"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = sys
        .call(
            Method::DELETE,
            &format!("/api/posts/{pid}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = sys
        .call(Method::DELETE, &format!("/api/posts/{pid}"), None, None)
        .await;
    assert_eq!(status, 401);
    let missing = uuid::Uuid::new_v4();
    assert_eq!(sys.get(&format!("/api/posts/{missing}"), None).await.0, 404);
    assert_eq!(sys.get("/api/posts/not-a-uuid", None).await.0, 404);
    assert_eq!(sys.get("/api/posts/not-a-uuid/comments", None).await.0, 404);
    let (status, _) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{missing}"),
            Some(&ada),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = sys
        .call(Method::DELETE, "/api/comments/nope", Some(&ada), None)
        .await;
    assert_eq!(status, 404);
    let (_, still) = sys.get(&format!("/api/posts/{pid}"), None).await;
    assert_eq!(still["title"], "mine");
}

#[tokio::test]
async fn comments_are_listed_oldest_first_edited_and_deleted_by_their_author() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let (bob, bob_id) = sys.register("bob").await;
    let post = new_post(&sys, &ada, "p", &["help"]).await;
    let pid = id(&post);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, c) = sys
            .post(
                &format!("/api/posts/{pid}/comments"),
                Some(&bob),
                json!({"content": format!("c{i}")}),
            )
            .await;
        assert_eq!(status, 201, "{c}");
        assert_eq!(c["post_id"], pid.as_str());
        assert_eq!(c["author"], json!({"id": bob_id, "nickname": "bob"}));
        assert!(is_time(&c["created_at"]));
        assert_eq!(c["edited_at"], Value::Null);
        assert_eq!(c["likes"], 0);
        assert_eq!(c["my_reaction"], Value::Null);
        assert_eq!(c.as_object().expect("object").len(), 9, "{c}");
        ids.push(id(&c));
    }
    let (_, p) = sys.get(&format!("/api/posts/{pid}"), None).await;
    assert_eq!(p["comment_count"], 5);

    // Pages of two, oldest first, no duplicates.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/posts/{pid}/comments?limit=2&cursor={c}"),
            None => format!("/api/posts/{pid}/comments?limit=2"),
        };
        let (status, page) = sys.get(&path, None).await;
        assert_eq!(status, 200, "{page}");
        for c in page["items"].as_array().expect("items") {
            seen.push(id(c));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // Bad inputs.
    let (status, body) = sys
        .post(
            &format!("/api/posts/{pid}/comments"),
            Some(&bob),
            json!({"content": "  "}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["fields"].get("content").is_some());
    let (status, _) = sys
        .post(
            &format!("/api/posts/{pid}/comments"),
            Some(&bob),
            json!({"content": "x".repeat(5001)}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = sys
        .post(
            &format!("/api/posts/{pid}/comments"),
            None,
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = sys
        .post(
            &format!("/api/posts/{}/comments", uuid::Uuid::new_v4()),
            Some(&bob),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = sys
        .get(&format!("/api/posts/{pid}/comments?limit=0"), None)
        .await;
    assert_eq!(status, 400);
    let (status, body) = sys
        .get(&format!("/api/posts/{pid}/comments?cursor=@@"), None)
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["fields"].get("cursor").is_some());

    // Edit and delete: the author only.
    let cid = &ids[0];
    let (status, _) = sys
        .call(
            Method::PATCH,
            &format!("/api/comments/{cid}"),
            Some(&ada),
            Some(json!({"content": "hijack"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, c) = sys
        .call(
            Method::PATCH,
            &format!("/api/comments/{cid}"),
            Some(&bob),
            Some(json!({"content": "fixed"})),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["content"], "fixed");
    assert!(is_time(&c["edited_at"]));
    let (status, _) = sys
        .call(
            Method::DELETE,
            &format!("/api/comments/{cid}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = sys
        .call(
            Method::DELETE,
            &format!("/api/comments/{cid}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = sys
        .call(
            Method::DELETE,
            &format!("/api/comments/{cid}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = sys
        .call(
            Method::PUT,
            &format!("/api/comments/{cid}/reaction"),
            Some(&ada),
            Some(json!({"reaction": "like"})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, page) = sys.get(&format!("/api/posts/{pid}/comments"), None).await;
    assert_eq!(page["items"].as_array().expect("items").len(), 4);
    let (_, p) = sys.get(&format!("/api/posts/{pid}"), None).await;
    assert_eq!(p["comment_count"], 4);
}

#[tokio::test]
async fn reactions_are_exclusive_idempotent_and_shown_to_their_owner() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ada, "p", &["news"]).await;
    let pid = id(&post);
    let path = format!("/api/posts/{pid}/reaction");
    let put = |token: Option<&str>, body: Value| {
        let path = path.clone();
        let token = token.map(str::to_string);
        let sys = &sys;
        async move {
            sys.call(Method::PUT, &path, token.as_deref(), Some(body))
                .await
        }
    };
    let (status, r) = put(Some(&bob), json!({"reaction": "like"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r, json!({"likes": 1, "dislikes": 0, "my_reaction": "like"}));
    let (_, r) = put(Some(&bob), json!({"reaction": "like"})).await;
    assert_eq!(r, json!({"likes": 1, "dislikes": 0, "my_reaction": "like"}));
    let (_, r) = put(Some(&bob), json!({"reaction": "dislike"})).await;
    assert_eq!(
        r,
        json!({"likes": 0, "dislikes": 1, "my_reaction": "dislike"})
    );
    let (_, r) = put(Some(&ada), json!({"reaction": "like"})).await;
    assert_eq!(r, json!({"likes": 1, "dislikes": 1, "my_reaction": "like"}));

    let (_, seen_by_bob) = sys.get(&format!("/api/posts/{pid}"), Some(&bob)).await;
    assert_eq!(seen_by_bob["my_reaction"], "dislike");
    assert_eq!(seen_by_bob["likes"], 1);
    assert_eq!(seen_by_bob["dislikes"], 1);
    let (_, anonymous) = sys.get(&format!("/api/posts/{pid}"), None).await;
    assert_eq!(anonymous["my_reaction"], Value::Null);
    let (_, list) = sys.get("/api/posts", Some(&ada)).await;
    assert_eq!(list["items"][0]["my_reaction"], "like");

    let (_, r) = put(Some(&bob), json!({"reaction": null})).await;
    assert_eq!(r, json!({"likes": 1, "dislikes": 0, "my_reaction": null}));

    for bad in [
        json!({}),
        json!({"reaction": "love"}),
        json!({"reaction": 1}),
    ] {
        let (status, body) = put(Some(&bob), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["fields"].get("reaction").is_some());
    }
    assert_eq!(put(None, json!({"reaction": "like"})).await.0, 401);
    let (status, _) = sys
        .call(
            Method::PUT,
            &format!("/api/posts/{}/reaction", uuid::Uuid::new_v4()),
            Some(&bob),
            Some(json!({"reaction": "like"})),
        )
        .await;
    assert_eq!(status, 404);

    // Comments too.
    let (_, c) = sys
        .post(
            &format!("/api/posts/{pid}/comments"),
            Some(&bob),
            json!({"content": "c"}),
        )
        .await;
    let cpath = format!("/api/comments/{}/reaction", id(&c));
    let (status, r) = sys
        .call(
            Method::PUT,
            &cpath,
            Some(&ada),
            Some(json!({"reaction": "dislike"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r,
        json!({"likes": 0, "dislikes": 1, "my_reaction": "dislike"})
    );
    let (_, page) = sys
        .get(&format!("/api/posts/{pid}/comments"), Some(&ada))
        .await;
    assert_eq!(page["items"][0]["dislikes"], 1);
    assert_eq!(page["items"][0]["my_reaction"], "dislike");
}

#[tokio::test]
async fn fifty_users_changing_their_minds_concurrently_end_with_exact_counts() {
    let sys = System::up().await;
    let (ada, _) = sys.register("author").await;
    let post = new_post(&sys, &ada, "popular", &["general"]).await;
    let path = format!("/api/posts/{}/reaction", id(&post));
    let nicknames: Vec<String> = (0..50).map(|i| format!("user{i:02}")).collect();
    let tokens: Vec<String> = sys
        .register_many(&nicknames)
        .await
        .into_iter()
        .map(|(token, _)| token)
        .collect();
    // Everyone likes, then dislikes; odd users withdraw, users divisible
    // by 4 like again. Final: likes = 13 (0,4,..,48), dislikes = 12.
    let runs = tokens.iter().enumerate().map(|(i, token)| {
        let sys = &sys;
        let path = path.clone();
        async move {
            let mut steps = vec![json!("like"), json!("dislike")];
            if i % 2 == 1 {
                steps.push(Value::Null);
            } else if i % 4 == 0 {
                steps.push(json!("like"));
            }
            for step in steps {
                let (status, body) = sys
                    .call(
                        Method::PUT,
                        &path,
                        Some(token),
                        Some(json!({"reaction": step})),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["my_reaction"], step);
            }
        }
    });
    futures::future::join_all(runs).await;
    let (_, p) = sys.get(&format!("/api/posts/{}", id(&post)), None).await;
    assert_eq!(
        (p["likes"].clone(), p["dislikes"].clone()),
        (json!(13), json!(12))
    );
}

#[tokio::test]
async fn list_filters_combine_and_bad_queries_are_refused() {
    let sys = System::up().await;
    let (ada, ada_id) = sys.register("ada").await;
    let (bob, bob_id) = sys.register("bob").await;
    let a_news = new_post(&sys, &ada, "a-news", &["news"]).await;
    let _a_help = new_post(&sys, &ada, "a-help", &["help", "news"]).await;
    let b_news = new_post(&sys, &bob, "b-news", &["news"]).await;
    let _b_meta = new_post(&sys, &bob, "b-meta", &["meta"]).await;
    for p in [&a_news, &b_news] {
        let (status, _) = sys
            .call(
                Method::PUT,
                &format!("/api/posts/{}/reaction", id(p)),
                Some(&bob),
                Some(json!({"reaction": "like"})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (_, all) = sys.get("/api/posts", None).await;
    assert_eq!(titles(&all), ["b-meta", "b-news", "a-help", "a-news"]);
    let (_, news) = sys.get("/api/posts?category=news", None).await;
    assert_eq!(titles(&news), ["b-news", "a-help", "a-news"]);
    let (_, by_ada) = sys.get(&format!("/api/posts?author={ada_id}"), None).await;
    assert_eq!(titles(&by_ada), ["a-help", "a-news"]);
    let (_, mine) = sys.get("/api/posts?author=me", Some(&bob)).await;
    assert_eq!(titles(&mine), ["b-meta", "b-news"]);
    let (_, liked) = sys.get("/api/posts?reacted=like", Some(&bob)).await;
    assert_eq!(titles(&liked), ["b-news", "a-news"]);
    let (_, combo) = sys
        .get(
            &format!("/api/posts?reacted=like&category=news&author={ada_id}"),
            Some(&bob),
        )
        .await;
    assert_eq!(titles(&combo), ["a-news"]);
    let (_, combo) = sys
        .get(&format!("/api/posts?category=news&author={bob_id}"), None)
        .await;
    assert_eq!(titles(&combo), ["b-news"]);
    let (_, none_liked) = sys.get("/api/posts?reacted=like", Some(&ada)).await;
    assert!(titles(&none_liked).is_empty());

    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=bm9wZQ", "cursor"),
        ("author=nobody", "author"),
        ("category=nope", "category"),
        ("reacted=dislike", "reacted"),
    ] {
        let (status, body) = sys.get(&format!("/api/posts?{q}"), None).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"]["fields"].get(field).is_some(), "{q}: {body}");
    }
    for q in ["author=me", "reacted=like"] {
        let (status, body) = sys.get(&format!("/api/posts?{q}"), None).await;
        assert_eq!(status, 401, "{q}: {body}");
    }
    let (status, page) = sys.get("/api/posts?limit=100", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn cursor_pages_are_stable_while_posts_arrive() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let (bob, _) = sys.register("bob").await;
    let mut older = Vec::new();
    for i in 0..12 {
        older.push(id(&new_post(
            &sys,
            &ada,
            &format!("old{i:02}"),
            &["general"],
        )
        .await));
    }
    let writer = {
        let sys_base = sys.base.clone();
        let http = sys.http.clone();
        let bob = bob.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                let (status, _) = common::call_at(
                    &http,
                    &sys_base,
                    Method::POST,
                    "/api/posts",
                    Some(&bob),
                    Some(json!({"title": format!("new{i}"), "content": "c", "categories": ["general"]})),
                )
                .await;
                assert_eq!(status, 201);
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/posts?limit=3&cursor={c}"),
            None => "/api/posts?limit=3".to_string(),
        };
        let (status, page) = sys.get(&path, None).await;
        assert_eq!(status, 200, "{page}");
        for p in page["items"].as_array().expect("items") {
            seen.push(id(p));
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    writer.await.expect("writer");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates in {seen:?}");
    // Everything older than the first page is seen, newest first.
    let expected: Vec<&String> = older.iter().rev().collect();
    let seen_old: Vec<&String> = seen.iter().filter(|s| older.contains(s)).collect();
    assert_eq!(seen_old, expected);
    assert!(pages >= 4);
}

#[tokio::test]
async fn idempotency_key_retry_returns_the_same_post_and_creates_one() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let send = || {
        sys.http
            .post(sys.url("/api/posts"))
            .bearer_auth(&ada)
            .header("Idempotency-Key", "create-once-1")
            .json(&json!({"title": "once", "content": "c", "categories": ["meta"]}))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let second = send().await.expect("send");
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.expect("json");
    assert_eq!(first, second);
    let (_, list) = sys.get("/api/posts", None).await;
    assert_eq!(titles(&list), ["once"]);
}

#[tokio::test]
async fn the_feed_query_uses_an_index_over_100000_posts() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    // The projection exists once a post went through it.
    new_post(&sys, &ada, "seed", &["news"]).await;
    let pool = sys.pool().await;
    sqlx::query(
        "insert into proj_posts_v1.posts (id, author_id, author_nickname, title, content, categories,
                                          created_at, deleted, position)
         select gen_random_uuid(), gen_random_uuid(), 'bulk', 't' || g, 'c', array['general'],
                now(), g % 10 = 0, 1000 + g
         from generate_series(1, 100000) g",
    )
    .execute(&pool)
    .await
    .expect("bulk insert");
    sqlx::query(
        "insert into proj_posts_v1.post_categories (post_id, category, position)
         select id, 'general', position from proj_posts_v1.posts where not deleted
         on conflict do nothing",
    )
    .execute(&pool)
    .await
    .expect("bulk categories");
    sqlx::query("analyze proj_posts_v1.posts")
        .execute(&pool)
        .await
        .expect("analyze");
    sqlx::query("analyze proj_posts_v1.post_categories")
        .execute(&pool)
        .await
        .expect("analyze");
    let filters = [
        forum_gateway::routes::posts::PostFilter {
            limit: 21,
            ..Default::default()
        },
        forum_gateway::routes::posts::PostFilter {
            limit: 21,
            before: Some(50_000),
            reader: Some(uuid::Uuid::new_v4()),
            ..Default::default()
        },
        forum_gateway::routes::posts::PostFilter {
            limit: 21,
            category: Some("general".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        let mut qb = sqlx::QueryBuilder::new("explain ");
        forum_gateway::routes::posts::push_post_list(&mut qb, &filter);
        let plan: Vec<String> = qb
            .build_query_scalar()
            .fetch_all(&pool)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan on posts"), "{filter:?}:\n{plan}");
        assert!(plan.contains("Index"), "{filter:?}:\n{plan}");
    }
    // And the API still answers over that many rows.
    let (status, page) = sys.get("/api/posts?limit=5", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().expect("items").len(), 5);
}

#[tokio::test]
async fn a_retried_delete_answers_204_again_and_edits_refuse_blank_text() {
    let sys = System::up().await;
    let (ada, _) = sys.register("ada").await;
    let post = new_post(&sys, &ada, "p", &["news"]).await;
    let pid = id(&post);
    let (_, c) = sys
        .post(
            &format!("/api/posts/{pid}/comments"),
            Some(&ada),
            json!({"content": "c"}),
        )
        .await;
    let (status, body) = sys
        .call(
            Method::PATCH,
            &format!("/api/comments/{}", id(&c)),
            Some(&ada),
            Some(json!({"content": "   "})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["fields"].get("content").is_some());
    let (status, body) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{pid}"),
            Some(&ada),
            Some(json!({"title": " ", "categories": ["nope"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["fields"].get("title").is_some());
    assert!(body["error"]["fields"].get("categories").is_some());
    let delete = || {
        sys.http
            .delete(sys.url(&format!("/api/posts/{pid}")))
            .bearer_auth(&ada)
            .header("Idempotency-Key", "delete-once")
            .send()
    };
    assert_eq!(delete().await.expect("send").status(), 204);
    assert_eq!(delete().await.expect("send").status(), 204);
}

#[tokio::test]
async fn the_openapi_description_lists_every_forum_route() {
    let sys = System::up().await;
    let (status, doc) = sys.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/categories", "get"),
        ("/api/posts", "get"),
        ("/api/posts", "post"),
        ("/api/posts/{id}", "get"),
        ("/api/posts/{id}", "patch"),
        ("/api/posts/{id}", "delete"),
        ("/api/posts/{id}/comments", "get"),
        ("/api/posts/{id}/comments", "post"),
        ("/api/comments/{id}", "patch"),
        ("/api/comments/{id}", "delete"),
        ("/api/posts/{id}/reaction", "put"),
        ("/api/comments/{id}/reaction", "put"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
}
