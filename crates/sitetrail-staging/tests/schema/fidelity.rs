//! A site's schema comes through create staging, a reset from a backup and a push whole, on
//! MariaDB: a foreign key between prefixed tables (WooCommerce's), STORED and VIRTUAL
//! generated columns, a VARCHAR too short for the longer staging URL (the cell is left as it
//! was and reported), an ENUM whose values are URLs (never rewritten), a table and a column
//! with a backtick in their names, a view and a trigger (made by a user that does not exist
//! where the copy goes).

use sitetrail_core::{Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service, mysql};
use sitetrail_staging::{Operation, PushScope};

use super::{Fixture, fixture};

/// Live's extra schema, in live's database with live's prefix `wp_`.
fn add_schema(f: &Fixture) {
    let (db, u) = (&f.live.db, &f.live.url);
    let n = u.chars().count();
    mysql(&format!(
        "USE `{db}`;
        CREATE TABLE wp_woocommerce_downloadable_product_permissions (
            permission_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            download_id VARCHAR(36) NOT NULL) ENGINE=InnoDB;
        CREATE TABLE wp_wc_download_log (
            download_log_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            permission_id BIGINT UNSIGNED NOT NULL, KEY permission_id (permission_id),
            CONSTRAINT fk_wp_wc_download_log_permission_id FOREIGN KEY (permission_id)
              REFERENCES wp_woocommerce_downloadable_product_permissions (permission_id)
              ON DELETE CASCADE) ENGINE=InnoDB;
        INSERT INTO wp_woocommerce_downloadable_product_permissions VALUES (1, 'a'), (2, 'b');
        INSERT INTO wp_wc_download_log VALUES (1, 1), (2, 2);
        CREATE TABLE wp_shapes (id INT PRIMARY KEY, url VARCHAR(200),
            url_upper VARCHAR(200) AS (UPPER(url)) STORED,
            url_len INT AS (CHAR_LENGTH(url)) VIRTUAL,
            short VARCHAR({n}), kind ENUM('{u}', 'other')) ENGINE=InnoDB;
        INSERT INTO wp_shapes (id, url, short, kind) VALUES (1, '{u}/a', '{u}', '{u}');
        CREATE TABLE `wp_odd``name` (`we``ird` VARCHAR(200), id INT PRIMARY KEY);
        INSERT INTO `wp_odd``name` VALUES ('{u}/b', 1);
        CREATE TABLE wp_post_audit (id INT AUTO_INCREMENT PRIMARY KEY, post_id BIGINT UNSIGNED,
            site VARCHAR(100));
        CREATE TABLE plugin_data (id INT PRIMARY KEY);
        CREATE VIEW wp_outside AS SELECT id FROM plugin_data;
        CREATE ALGORITHM = MERGE VIEW wp_published AS SELECT ID, post_title FROM wp_posts
            WHERE post_status = 'publish' WITH CASCADED CHECK OPTION;
        CREATE DEFINER = `sitetrail_nobody`@`localhost` TRIGGER wp_audit_posts
            AFTER INSERT ON wp_posts FOR EACH ROW
            INSERT INTO wp_post_audit (post_id, site) VALUES (NEW.ID, '{u}');"
    ))
    .unwrap();
}

fn one(sql: &str) -> String {
    mysql(sql).unwrap().trim_end().to_owned()
}

/// The schema in database `db` with prefix `p`, copied to the environment at `url` from live
/// at `live`; `skipped` says whether the short cell was left as it was by this copy.
fn assert_schema(db: &str, p: &str, url: &str, live: &str, what: &str) {
    assert_eq!(
        one(&format!(
            "SELECT constraint_name, table_name, referenced_table_name FROM information_schema.referential_constraints WHERE constraint_schema = '{db}' AND constraint_name LIKE 'fk\\_%'"
        )),
        format!(
            "fk_{p}wc_download_log_permission_id\t{p}wc_download_log\t{p}woocommerce_downloadable_product_permissions"
        ),
        "{what}: the foreign key under its name, between the tables"
    );
    assert_eq!(
        one(&format!(
            "SELECT url, url_upper, url_len, short, kind FROM `{db}`.`{p}shapes`"
        )),
        format!(
            "{url}/a\t{}\t{}\t{live}\t{live}",
            format!("{url}/a").to_uppercase(),
            url.len() + 2
        ),
        "{what}: generated columns made by their definitions, the short cell and the ENUM as they were"
    );
    assert_eq!(
        one(&format!(
            "SELECT `we``ird` FROM `{db}`.`{p}odd``name` WHERE id = 1"
        )),
        format!("{url}/b"),
        "{what}: names with a backtick"
    );
    assert_eq!(
        one(&format!(
            "SELECT security_type, algorithm, check_option FROM information_schema.views WHERE table_schema = '{db}' AND table_name = '{p}published'"
        )),
        "INVOKER\tMERGE\tCASCADED",
        "{what}: the view"
    );
    assert!(
        one(&format!("SELECT COUNT(*) FROM `{db}`.`{p}published`"))
            .parse::<u64>()
            .unwrap()
            > 0,
        "{what}: the view reads the posts"
    );
    assert_eq!(
        one(&format!(
            "SELECT trigger_name, event_object_table FROM information_schema.triggers WHERE trigger_schema = '{db}' AND event_object_table = '{p}posts'"
        )),
        format!("{p}audit_posts\t{p}posts"),
        "{what}: the trigger"
    );
    assert_eq!(
        one(&format!(
            "SELECT sql_mode = @@GLOBAL.sql_mode FROM information_schema.triggers WHERE trigger_schema = '{db}' AND trigger_name = '{p}audit_posts'"
        )),
        "1",
        "{what}: the trigger runs in the sql_mode it was made in"
    );
    assert_eq!(
        one(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name LIKE 'stn%'"
        )),
        "0",
        "{what}: nothing built aside is left (a push keeps the replaced tables, `sto…`, for its undo)"
    );
    // The foreign key works: deleting a permission deletes its log.
    let count = || one(&format!("SELECT COUNT(*) FROM `{db}`.`{p}wc_download_log`"));
    let before: u64 = count().parse().unwrap();
    let first = one(&format!(
        "SELECT MIN(permission_id) FROM `{db}`.`{p}woocommerce_downloadable_product_permissions`"
    ));
    mysql(&format!(
        "DELETE FROM `{db}`.`{p}woocommerce_downloadable_product_permissions` WHERE permission_id = {first}"
    ))
    .unwrap();
    assert_eq!(
        count().parse::<u64>().unwrap(),
        before - 1,
        "{what}: the foreign key cascades"
    );
}

fn assert_skipped(activity: &StoredActivity, p: &str, what: &str) {
    let db = &activity.details["database"];
    assert_eq!(
        db["views_not_copied"],
        serde_json::json!([format!("{p}outside")]),
        "{what}: a view of a table that is not the site's is reported, not made: {db}"
    );
    assert_eq!(db["skipped_cells_total"], 1, "{what}: {db}");
    let cell = &db["skipped_cells"][0];
    assert_eq!(cell["table"], format!("{p}shapes"), "{what}: {cell}");
    assert_eq!(cell["column"], "short");
    assert_eq!(cell["key"], "id=1");
    assert!(
        cell["reason"].as_str().unwrap().contains("at most"),
        "{cell}"
    );
}

/// The trigger fires in an environment: a post inserted there is audited with its URL.
fn assert_trigger_fires(site: &wordpress::WpSite, what: &str) {
    let id = site
        .php("echo wp_insert_post(['post_title' => 'Audited', 'post_status' => 'publish']);")
        .unwrap();
    assert_eq!(
        one(&format!(
            "SELECT site FROM `{}`.`{}post_audit` WHERE post_id = {id}",
            site.db, site.prefix
        )),
        site.url,
        "{what}: the trigger fired, its URL the environment's"
    );
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schema_comes_through_create_reset_and_push_whole() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    add_schema(&f);

    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let staging = f.staging();
    let p = staging.prefix.clone();
    assert_schema(
        &staging.db,
        &p,
        &f.staging_url,
        &f.live.url,
        "create staging",
    );
    assert_skipped(&created, &p, "create staging");
    assert_trigger_fires(&staging, "create staging");

    let backup = f
        .run(Operation::Backup {
            environment: sitetrail_core::Environment::Live,
            reason: sitetrail_staging::BackupReason::Manual,
        })
        .await;
    assert_eq!(backup.status, Status::Completed, "{:?}", backup.error);
    let id = sitetrail_core::BackupId::parse(
        &f.engine
            .snapshots()
            .backups(&f.site)
            .unwrap()
            .iter()
            .find(|m| m.reason == sitetrail_staging::BackupReason::Manual)
            .unwrap()
            .id,
    )
    .unwrap();
    let reset = f.run(Operation::ResetFromBackup(id)).await;
    assert_eq!(reset.status, Status::Completed, "{:?}", reset.error);
    assert_schema(
        &staging.db,
        &p,
        &f.staging_url,
        &f.live.url,
        "reset from backup",
    );
    assert_skipped(&reset, &p, "reset from backup");
    assert_trigger_fires(&staging, "reset from backup");

    // Live gains a trigger and a foreign key staging does not have: the push keeps them.
    mysql(&format!(
        "USE `{}`;
        CREATE TRIGGER wp_live_only BEFORE INSERT ON `wp_odd``name` FOR EACH ROW
            SET NEW.id = NEW.id + 1000;
        ALTER TABLE wp_post_audit ADD CONSTRAINT wp_audit_post FOREIGN KEY (post_id)
            REFERENCES wp_posts (ID) ON DELETE CASCADE;",
        f.live.db
    ))
    .unwrap();
    let pushed = f
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    assert_schema(&f.live.db, "wp_", &f.live.url, &f.live.url, "push");
    assert_eq!(
        one(&format!("SELECT COUNT(*) FROM `{}`.wp_outside", f.live.db)),
        "0",
        "push: live's own view, which staging did not have, is left as it was"
    );
    assert_trigger_fires(&f.live, "push");
    let db = &f.live.db;
    mysql(&format!(
        "INSERT INTO `{db}`.`wp_odd``name` VALUES ('x', 5)"
    ))
    .unwrap();
    assert_eq!(
        one(&format!(
            "SELECT `we``ird` FROM `{db}`.`wp_odd``name` WHERE id = 1005"
        )),
        "x",
        "push: live's own trigger is kept on the new table"
    );
    assert_eq!(
        one(&format!(
            "SELECT table_name, referenced_table_name FROM information_schema.referential_constraints WHERE constraint_schema = '{db}' AND constraint_name = 'wp_audit_post'"
        )),
        "wp_post_audit\twp_posts",
        "push: live's own foreign key is kept on the new tables"
    );
    assert_eq!(
        one(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name LIKE 'stn%'"
        )),
        "0",
        "push: nothing built aside is left"
    );
    assert_eq!(
        one(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name LIKE 'sto%'"
        )),
        one(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name LIKE 'wp\\_%' AND table_type = 'BASE TABLE'"
        )),
        "push: the replaced tables are kept for the undo, one for each of live's"
    );
    drop(staging);
}

/// A dump written before views, triggers and column kinds were kept: no `view` or `trigger`
/// lines, columns with a name and `textual` only (an ENUM counted as text), generated
/// columns' values in the rows. It still loads, the target's own columns deciding what is
/// rewritten and written.
#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dump_from_before_still_loads() {
    use sitetrail_staging::copy::{self, Rewrite};
    use sitetrail_staging::mysql::MysqlDb;

    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    add_schema(&f);
    let config = sitetrail_staging::wpconfig::read(&f.live.docroot).unwrap();
    let db = MysqlDb::connect(&config, &sitetrail_staging::DatabasePolicy::default())
        .await
        .unwrap();
    let new = f.dir.path().join("new.jsonl");
    copy::dump(&db, "wp_", &new, &|_| {}).await.unwrap();
    let text = std::fs::read_to_string(&new).unwrap();
    for (kind, name) in [("view", "wp_published"), ("trigger", "wp_audit_posts")] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{{\"{kind}\":")) && l.contains(name)),
            "the dump holds the {kind}"
        );
    }
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("{\"view\"") && !l.starts_with("{\"trigger\""))
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(cols) = v
                .get_mut("table")
                .and_then(|t| t.get_mut("columns"))
                .and_then(|c| c.as_array_mut())
            {
                for c in cols {
                    let textual = c["textual"].as_bool().unwrap() || c["name"] == "kind";
                    *c = serde_json::json!({ "name": c["name"], "textual": textual });
                }
            }
            format!("{v}\n")
        })
        .collect();
    let old_file = f.dir.path().join("old.jsonl");
    std::fs::write(&old_file, old).unwrap();
    let target = "http://127.0.0.1:18082";
    let rewrite = Rewrite {
        url: Some(php_serial::UrlRewrite::new(&f.live.url, target).unwrap()),
        from_prefix: "wp_".into(),
        to_prefix: "old_".into(),
    };
    let (created, stats) = copy::load(&old_file, &db, &rewrite, "stnold001_", &|_| {})
        .await
        .unwrap();
    let aside = |name: &str| {
        created
            .iter()
            .find(|(_, to)| to == name)
            .map(|(t, _)| t.clone())
            .unwrap()
    };
    let u = &f.live.url;
    assert_eq!(
        one(&format!(
            "SELECT url, url_upper, short, kind FROM `{}`.`{}`",
            f.live.db,
            aside("old_shapes")
        )),
        format!("{target}/a\t{}/A\t{u}\t{u}", target.to_uppercase()),
        "generated columns made, the short cell and the ENUM as they were"
    );
    assert_eq!(stats.skipped_cells_total, 1);
    assert_eq!(
        one(&format!(
            "SELECT referenced_table_name FROM information_schema.referential_constraints WHERE constraint_schema = '{}' AND constraint_name = 'stnold001_fk_old_wc_download_log_permission_id'",
            f.live.db
        )),
        aside("old_woocommerce_downloadable_product_permissions"),
        "the foreign key aside references its parent aside"
    );
    let list: Vec<String> = created
        .iter()
        .map(|(t, _)| format!("`{}`.`{t}`", f.live.db))
        .collect();
    mysql(&format!(
        "SET foreign_key_checks = 0; DROP TABLE {}",
        list.join(", ")
    ))
    .unwrap();
    db.disconnect().await;
}

/// What the foreign keys, triggers and views of a database are, by name and table.
fn schema_objects(db: &str) -> String {
    one(&format!(
        "SELECT 'fk', constraint_name, table_name FROM information_schema.referential_constraints WHERE constraint_schema = '{db}' AND table_name NOT LIKE 'sto%'
         UNION ALL SELECT 'trigger', trigger_name, event_object_table FROM information_schema.triggers WHERE trigger_schema = '{db}' AND event_object_table NOT LIKE 'sto%'
         UNION ALL SELECT 'view', table_name, '' FROM information_schema.views WHERE table_schema = '{db}'
         ORDER BY 1, 2"
    ))
}

/// A push that fails after live's new tables, their foreign keys, triggers and views were
/// built aside leaves live's own as they were, and nothing aside.
#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_that_fails_after_the_build_leaves_lives_schema_as_it_was() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    add_schema(&f);
    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let before = schema_objects(&f.live.db);
    assert!(before.contains("wp_audit_posts") && before.contains("wp_published"));
    // Live's docroot's directory refuses new entries, so building live's new files aside
    // fails after the database was built aside.
    let parent = f.live.docroot.parent().unwrap().to_owned();
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&parent)
            .status()
            .unwrap()
            .success()
    };
    assert!(chattr("+i"));
    let failed = f
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
    assert!(chattr("-i"));
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        schema_objects(&f.live.db),
        before,
        "live's foreign keys, triggers and views are as they were"
    );
    assert_eq!(
        one(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}' AND table_name LIKE 'stn%'",
            f.live.db
        )),
        "0",
        "no table or view is left aside"
    );
    let pushed = f
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    assert_eq!(
        schema_objects(&f.live.db),
        before,
        "after the push, live has the same foreign keys, triggers and views"
    );
}

/// Switching the replaced tables back (an undo) and calling `after_switch` with the prefixes
/// the other way round gives their foreign keys and triggers their names again; the tables
/// switched out keep theirs under their own prefix.
#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switch_back_names_the_replaced_tables_objects_again() {
    if !wordpress::services(&[Service::MariaDb]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sitetrail_t_switch_back_{}", std::process::id());
    mysql(&format!(
        "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; USE `{db}`;
        CREATE TABLE wp_a (id INT PRIMARY KEY) ENGINE=InnoDB;
        CREATE TABLE wp_b (id INT PRIMARY KEY, a_id INT, KEY (a_id),
            CONSTRAINT fk_b FOREIGN KEY (a_id) REFERENCES wp_a (id) ON DELETE CASCADE) ENGINE=InnoDB;
        CREATE TRIGGER trg_b BEFORE INSERT ON wp_b FOR EACH ROW SET NEW.id = NEW.id + 100;
        CREATE TABLE sto1_wp_a (id INT PRIMARY KEY) ENGINE=InnoDB;
        CREATE TABLE sto1_wp_b (id INT PRIMARY KEY, a_id INT, KEY (a_id),
            CONSTRAINT sto1_fk_b FOREIGN KEY (a_id) REFERENCES sto1_wp_a (id) ON DELETE CASCADE) ENGINE=InnoDB;
        CREATE TRIGGER sto1_trg_b BEFORE INSERT ON sto1_wp_b FOR EACH ROW SET NEW.id = NEW.id + 200;
        RENAME TABLE wp_a TO stu1_wp_a, wp_b TO stu1_wp_b, sto1_wp_a TO wp_a, sto1_wp_b TO wp_b;"
    ))
    .unwrap();
    std::fs::write(
        dir.path().join("wp-config.php"),
        wordpress::wp_config(&db, "wp_"),
    )
    .unwrap();
    let config = sitetrail_staging::wpconfig::read(dir.path()).unwrap();
    let site_db = sitetrail_staging::db::SiteDb::Mysql(
        sitetrail_staging::mysql::MysqlDb::connect(
            &config,
            &sitetrail_staging::DatabasePolicy::default(),
        )
        .await
        .unwrap(),
    );
    sitetrail_staging::schema::after_switch(Some(&site_db), "sto1_", "stu1_", true).await;
    assert_eq!(
        schema_objects(&db),
        "fk\tfk_b\twp_b\nfk\tstu1_fk_b\tstu1_wp_b\ntrigger\tstu1_trg_b\tstu1_wp_b\ntrigger\ttrg_b\twp_b"
    );
    mysql(&format!(
        "USE `{db}`; INSERT INTO wp_a VALUES (1); INSERT INTO wp_b VALUES (1, 1); DELETE FROM wp_a"
    ))
    .unwrap();
    assert_eq!(
        one(&format!("SELECT COUNT(*) FROM `{db}`.wp_b")),
        "0",
        "the foreign key named again cascades"
    );
    mysql(&format!("USE `{db}`; INSERT INTO wp_b VALUES (1, NULL)")).unwrap();
    assert_eq!(
        one(&format!("SELECT id FROM `{db}`.wp_b")),
        "201",
        "the trigger named again is the switched-back table's own"
    );
    mysql(&format!("DROP DATABASE `{db}`")).unwrap();
}
