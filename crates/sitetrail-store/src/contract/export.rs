//! Exports: one long read that must return exactly what the pages return.

use sitetrail_core::{Cursor, StoredActivity};

use super::*;
use crate::ExportColumns;

/// 1,300 activities over three sites of two accounts: every kind of actor, ended and
/// running and failed ones, times that repeat (so `seq` breaks ties), details and errors
/// that name the support person.
async fn history(f: &Fixture) {
    let mut batch = Vec::new();
    for i in 0..1_300u32 {
        let (account, s) = match i % 5 {
            0..=2 => ("acme", "shop"),
            3 => ("acme", "blog"),
            _ => ("globex", "portal"),
        };
        let kind = match i % 3 {
            0 => ActorKind::User,
            1 => ActorKind::Support,
            _ => ActorKind::System,
        };
        let mut a = new(account, s, kind);
        a.id = Some(ActivityId::parse(&format!("x-{i:05}")).unwrap());
        let created = 1_760_000_000_000 + i64::from(i / 3) * 60_000;
        a.created_at = Some(Timestamp::from_millis(created).unwrap());
        if i % 4 == 0 {
            a.activity = ActivityKind::CreateBackup;
            a.environment = Environment::Live;
        }
        a.description = format!("Pushed by {{actor}} for {SUPPORT} #{i}");
        if i == 13 || i == 26 {
            a.description.push_str(&format!(" {HOSTILE}"));
        }
        a.details = serde_json::json!({"n": i, "by": SUPPORT})
            .as_object()
            .unwrap()
            .clone();
        match i % 7 {
            0 => {
                a.status = Status::Failed;
                a.error = Some(format!("Sam Rivera saw a timeout #{i}"));
            }
            1 => {}
            _ => a.status = Status::Completed,
        }
        if a.status.is_ended() {
            a.completed_at = Some(Timestamp::from_millis(created + 5_000).unwrap());
        }
        batch.push(a);
        if batch.len() == 500 {
            f.store.record(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    f.store.record(batch).await.unwrap();
}

/// Every page in turn, 200 at a time.
async fn pages(
    f: &Fixture,
    sc: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
) -> Vec<StoredActivity> {
    let mut all = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = Page { limit: 200, cursor };
        let l = f.store.list(sc, audience, filter, page).await.unwrap();
        all.extend(l.items);
        match l.next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

async fn export(
    f: &Fixture,
    sc: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    columns: ExportColumns,
) -> Vec<StoredActivity> {
    f.store
        .export(sc, audience, filter, columns)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

fn raw(f: impl FnOnce(&mut RawQuery)) -> RawQuery {
    let mut raw = RawQuery::default();
    f(&mut raw);
    raw
}

/// Scopes, audiences and filters, with the least each must find.
/// Text a viewer may search for that would end a hand-quoted literal.
const HOSTILE: &str = "it's \\ E'\\'); DROP TABLE activities; --";

fn cases() -> Vec<(Scope, Audience, RawQuery, usize)> {
    use Audience::{Client, Internal};
    vec![
        (scope("acme", Some("shop")), Internal, raw(|_| {}), 780),
        (scope("acme", Some("shop")), Client, raw(|_| {}), 780),
        (scope("acme", None), Client, raw(|_| {}), 1_040),
        (scope("globex", None), Internal, raw(|_| {}), 260),
        // Another account's site: nothing, as with a page.
        (scope("acme", Some("portal")), Internal, raw(|_| {}), 0),
        (
            scope("acme", None),
            Internal,
            raw(|r| r.status = Some("failed".into())),
            100,
        ),
        (
            scope("acme", Some("shop")),
            Client,
            raw(|r| r.user = Some("Support user".into())),
            200,
        ),
        // For a client, the email finds the users who have it, not the support person.
        (
            scope("acme", Some("shop")),
            Client,
            raw(|r| r.user = Some(SUPPORT.into())),
            200,
        ),
        (
            scope("acme", Some("shop")),
            Internal,
            raw(|r| r.user = Some(SUPPORT.into())),
            200,
        ),
        (
            scope("acme", None),
            Client,
            raw(|r| r.q = Some("#12".into())),
            10,
        ),
        // Quotes, backslashes and SQL in the user's text are values, never statements.
        (
            scope("acme", None),
            Internal,
            raw(|r| r.q = Some(HOSTILE.into())),
            2,
        ),
        (
            scope("acme", None),
            Internal,
            raw(|r| r.user = Some("o'brien\\@example.com".into())),
            0,
        ),
        (
            scope("acme", None),
            Internal,
            raw(|r| {
                r.activity = Some("create_backup".into());
                r.service = Some("backups".into());
                r.from = Some("2025-10-09T10:00:00Z".into());
                r.to = Some("2025-10-09T12:00:00Z".into());
            }),
            10,
        ),
    ]
}

pub async fn an_export_returns_exactly_what_the_pages_return(f: Fixture) {
    history(&f).await;
    for (sc, audience, raw, least) in cases() {
        let what = format!("{sc:?} {audience:?} {raw:?}");
        let filter = filter(audience, raw);
        let expected = pages(&f, &sc, audience, &filter).await;
        assert!(expected.len() >= least, "{what}: {}", expected.len());
        if least == 0 {
            assert!(expected.is_empty(), "{what}");
        }
        let got = export(&f, &sc, audience, &filter, ExportColumns::All).await;
        assert_eq!(got.len(), expected.len(), "{what}");
        assert!(
            got == expected,
            "{what}: the same activities in the same order"
        );
    }
}

pub async fn a_csv_export_reads_everything_but_the_details(f: Fixture) {
    history(&f).await;
    for (sc, audience, raw, _) in cases() {
        let what = format!("{sc:?} {audience:?} {raw:?}");
        let filter = filter(audience, raw);
        let mut expected = pages(&f, &sc, audience, &filter).await;
        for a in &mut expected {
            a.details.clear();
        }
        let got = export(&f, &sc, audience, &filter, ExportColumns::Table).await;
        assert_eq!(got.len(), expected.len(), "{what}");
        assert!(
            got == expected,
            "{what}: the same activities in the same order"
        );
    }
}

pub async fn an_export_dropped_half_way_stops_and_the_store_reads_on(f: Fixture) {
    history(&f).await;
    let sc = scope("acme", None);
    let all = filter(Audience::Internal, RawQuery::default());
    // More than the PostgreSQL store's read connections: none may be kept busy.
    for _ in 0..12 {
        let mut stream = f
            .store
            .export(&sc, Audience::Internal, &all, ExportColumns::All)
            .await
            .unwrap();
        let first = stream.next_chunk().await.unwrap().unwrap();
        assert!(!first.is_empty());
        drop(stream);
    }
    let expected = pages(&f, &sc, Audience::Internal, &all).await;
    let got = export(&f, &sc, Audience::Internal, &all, ExportColumns::All).await;
    assert_eq!(got.len(), 1_040);
    assert!(got == expected);
    // Writes go on too.
    f.store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap();
}

/// Exports that nobody reads take the export readers, never what pages read with: a
/// store's pages answer while they wait, and past [`EXPORT_READERS`] another export
/// waits for one of them to end.
pub async fn exports_nobody_reads_hold_no_more_than_the_export_readers_and_pages_go_on(f: Fixture) {
    use crate::EXPORT_READERS;
    use std::time::Duration;
    // More than a reader sends ahead: an export nobody reads keeps its reader.
    for _ in 0..6 {
        let batch = (0..500).map(|_| new("acme", "shop", ActorKind::User));
        f.store.record(batch.collect()).await.unwrap();
    }
    let sc = scope("acme", None);
    let all = filter(Audience::Client, RawQuery::default());
    let open = || {
        f.store
            .export(&sc, Audience::Client, &all, ExportColumns::All)
    };
    let mut unread = Vec::new();
    for _ in 0..EXPORT_READERS {
        unread.push(open().await.unwrap());
    }
    let page = Page {
        limit: 50,
        cursor: None,
    };
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        f.store.list(&sc, Audience::Client, &all, page),
    )
    .await
    .expect("a page answers while every export reader is held")
    .unwrap();
    assert_eq!(first.items.len(), 50);
    let past = tokio::time::timeout(Duration::from_millis(300), open()).await;
    assert!(past.is_err(), "an export past the readers started at once");
    drop(unread.pop());
    let freed = tokio::time::timeout(Duration::from_secs(10), open())
        .await
        .expect("an export starts once a reader is free")
        .unwrap();
    assert!(freed.collect().await.unwrap().len() >= 3_000);
}
