//! Invariant 4: every read is scoped by the viewer's token; another account's data is a 404,
//! exactly like data that does not exist. Bad tokens are a 401.

use base64::Engine;
use sitetrail_core::Audience;

use crate::*;

fn viewer_paths(site: &str, activity: &str) -> Vec<String> {
    vec![
        format!("/api/v1/sites/{site}/activities"),
        format!("/api/v1/sites/{site}/activities/export?format=csv"),
        format!("/api/v1/sites/{site}/activities/export?format=ndjson"),
        format!("/api/v1/sites/{site}/activities/stream"),
        format!("/api/v1/activities/{activity}"),
    ]
}

#[tokio::test]
async fn another_accounts_site_or_activity_answers_404_like_a_missing_one() {
    let app = spawn_app().await;
    let theirs = app.record(&activity("globex", "portal")).await;
    let theirs = theirs["id"].as_str().unwrap();
    let mine = app.token("acme", None, Audience::Internal);
    let mut bodies = Vec::new();
    for path in viewer_paths("portal", theirs)
        .into_iter()
        .chain(viewer_paths("no-such-site", "no-such-id"))
    {
        let r = app.get(&mine, &path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        bodies.push((path, body["error"]["code"].clone()));
    }
    assert!(
        bodies.iter().all(|(_, code)| code == "not_found"),
        "{bodies:?}"
    );
    // The account-wide list holds only the viewer's own account.
    app.record(&activity("acme", "shop")).await;
    let page = app.get_json(&mine, "/api/v1/activities").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["account_id"] == "acme")
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_site_scoped_token_sees_only_its_site() {
    let app = spawn_app().await;
    let blog = app.record(&activity("acme", "blog")).await;
    app.record(&activity("acme", "shop")).await;
    let shop_only = app.token("acme", Some("shop"), Audience::Client);
    for path in viewer_paths("blog", blog["id"].as_str().unwrap()) {
        assert_eq!(app.get(&shop_only, &path).await.status(), 404, "{path}");
    }
    let page = app.get_json(&shop_only, "/api/v1/activities").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["site_id"], "shop");
}

#[tokio::test]
async fn forged_expired_and_wrongly_signed_tokens_are_refused() {
    let app = spawn_app().await;
    let a = app.record(&activity("acme", "shop")).await;
    let good = app.token("acme", None, Audience::Internal);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (head, rest) = good.split_once('.').unwrap();
    let (claims, _sig) = rest.split_once('.').unwrap();
    let mut raised: serde_json::Value =
        serde_json::from_slice(&b64.decode(claims).unwrap()).unwrap();
    raised["account"] = "globex".into();
    let tampered = format!(
        "{head}.{}.{}",
        b64.encode(raised.to_string()),
        rest.split_once('.').unwrap().1
    );
    let none = format!("{}.{claims}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    let other_key = sitetrail_server::TokenKeys::from_secret(&[9; 32]);
    let wrong_key = {
        let viewer = app.tokens.verify(&good).unwrap();
        other_key.mint(&viewer, 600).unwrap()
    };
    let expired = {
        let mut c: serde_json::Value =
            serde_json::from_slice(&b64.decode(claims).unwrap()).unwrap();
        c["exp"] = 1_000.into();
        c["iat"] = 0.into();
        // Signed with the real key, so only the expiry is wrong.
        let claims: sitetrail_server::auth::Claims = serde_json::from_value(c).unwrap();
        app.tokens.sign(&claims).unwrap()
    };
    for (what, token) in [
        ("tampered", tampered),
        ("alg none", none),
        ("wrong key", wrong_key),
        ("expired", expired),
        ("garbage", "not-a-token".to_owned()),
    ] {
        for path in viewer_paths("shop", a["id"].as_str().unwrap()) {
            let r = app.get(&token, &path).await;
            assert_eq!(r.status(), 401, "{what} {path}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
    }
    let r = app
        .http
        .get(app.url("/api/v1/activities"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token at all");
}

#[tokio::test]
async fn publisher_endpoints_need_a_valid_key_and_viewer_tokens_are_not_keys() {
    let app = spawn_app().await;
    let viewer = app.token("acme", None, Audience::Internal);
    for key in [None, Some("stk_000000000000_nope"), Some(viewer.as_str())] {
        let mut req = app
            .http
            .post(app.url("/api/v1/activities"))
            .json(&activity("acme", "shop"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{key:?}");
    }
    let internal = app.token("acme", None, Audience::Internal);
    let page = app.get_json(&internal, "/api/v1/activities").await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "nothing was written"
    );
}
