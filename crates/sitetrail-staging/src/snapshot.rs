//! Snapshots (backups and templates): self-describing directories with a manifest, the files
//! as a tar and the database as JSON lines. A snapshot whose checksums fail is refused before
//! anything is touched. Snapshots hold customers' data: their directories are 0700 and their
//! files 0600, whatever the umask.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sitetrail_core::{BackupId, Environment, SiteId, TemplateId, Timestamp};

use crate::copy::DbStats;
use crate::tree::TreeStats;

pub const MANIFEST: &str = "manifest.json";
pub const FILES: &str = "files.tar";
pub const DATABASE: &str = "database.jsonl";
/// The database of a snapshot of WordPress on SQLite: a consistent copy of the file.
pub const DATABASE_SQLITE: &str = "database.sqlite";

/// What kind of database a snapshot's was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbKind {
    #[default]
    Mysql,
    Sqlite,
}

impl DbKind {
    pub fn file(self) -> &'static str {
        match self {
            DbKind::Mysql => DATABASE,
            DbKind::Sqlite => DATABASE_SQLITE,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DbKind::Mysql => "MariaDB/MySQL",
            DbKind::Sqlite => "SQLite",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    Backup,
    Template,
}

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupReason {
    Manual,
    Daily,
    /// Taken automatically before a destructive operation.
    Automatic,
    Template,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub kind: SnapshotKind,
    pub id: String,
    pub site_id: Option<SiteId>,
    pub environment: Option<Environment>,
    pub reason: BackupReason,
    pub source_url: String,
    pub table_prefix: String,
    pub created_at: Timestamp,
    pub files_sha256: String,
    pub files_tar_bytes: u64,
    pub files: TreeStats,
    pub database_sha256: String,
    pub database_bytes: u64,
    pub database: DbStats,
    #[serde(default)]
    pub database_kind: DbKind,
    /// A template's name for people (free text); manifests written before it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The activity a backup was taken in (manifests written before it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<sitetrail_core::ActivityId>,
}

impl Manifest {
    /// What people call the snapshot: a template's name, else its id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// Template names are free text for people, at most this many characters.
pub const TEMPLATE_NAME_MAX: usize = 80;

/// A template's name as people gave it, checked: trimmed, not empty, at most
/// [`TEMPLATE_NAME_MAX`] characters, no control characters.
pub fn template_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("A template needs a name.".into());
    }
    if name.chars().count() > TEMPLATE_NAME_MAX {
        return Err(format!(
            "A template's name is at most {TEMPLATE_NAME_MAX} characters."
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("A template's name cannot hold control characters (tabs, new lines).".into());
    }
    Ok(name.to_owned())
}

/// The id a template gets from its name when none is given: `Bakery Classic` →
/// `bakery-classic` (letters and digits kept, lower-cased; anything else one `-`).
pub fn template_id_for(name: &str) -> TemplateId {
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    let id: String = id.trim_matches('-').chars().take(64).collect();
    let id = id.trim_end_matches('-');
    TemplateId::parse(if id.is_empty() { "template" } else { id })
        .expect("made of the allowed characters")
}

/// Where snapshots live in the data dir.
#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
}

impl Snapshots {
    pub fn new(data_dir: &Path) -> Self {
        Snapshots {
            root: data_dir.join("snapshots"),
        }
    }

    pub fn backup_dir(&self, site: &SiteId, id: &BackupId) -> PathBuf {
        self.root
            .join("backups")
            .join(site.as_str())
            .join(id.as_str())
    }

    pub fn template_dir(&self, name: &TemplateId) -> PathBuf {
        self.root.join("templates").join(name.as_str())
    }

    /// A new, empty directory to write a snapshot into before it is moved into place (what
    /// an interrupted write of the same tag left goes first).
    pub fn staging_area(&self, tag: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(".incoming").join(tag);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", dir.display()));
            }
            _ => {}
        }
        sitetrail_store::private::create_dir(&dir)?;
        Ok(dir)
    }

    /// Moves a finished snapshot into place; it becomes visible all at once.
    pub fn publish(&self, written: &Path, to: &Path) -> anyhow::Result<()> {
        sitetrail_store::private::create_dir(to.parent().expect("snapshot dirs have parents"))?;
        anyhow::ensure!(!to.exists(), "{} exists already", to.display());
        std::fs::rename(written, to).with_context(|| format!("publishing {}", to.display()))
    }

    /// A site's backups, newest first.
    pub fn backups(&self, site: &SiteId) -> anyhow::Result<Vec<Manifest>> {
        list(&self.root.join("backups").join(site.as_str()))
    }

    pub fn remove_backup(&self, site: &SiteId, id: &str) -> anyhow::Result<()> {
        let id = BackupId::parse(id)?;
        let dir = self.backup_dir(site, &id);
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
    }

    pub fn templates(&self) -> anyhow::Result<Vec<Manifest>> {
        list(&self.root.join("templates"))
    }

    /// Removes what interrupted snapshot writes left behind.
    pub fn clean_incoming(&self) {
        let _ = std::fs::remove_dir_all(self.root.join(".incoming"));
    }
}

fn list(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        match read_manifest(&path) {
            Ok(m) => out.push(m),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "an unreadable snapshot"),
        }
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(out)
}

pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .with_context(|| format!("reading the manifest in {}", dir.display()))?;
    serde_json::from_str(&text).context("a damaged snapshot manifest")
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> anyhow::Result<()> {
    sitetrail_store::private::write(&dir.join(MANIFEST), &serde_json::to_vec_pretty(m)?)
}

/// Checks a snapshot's files against its manifest. Nothing is restored from a snapshot that
/// fails this.
pub fn verify(dir: &Path) -> anyhow::Result<Manifest> {
    let m = read_manifest(dir)?;
    let (files_sha, _) = crate::tree::sha256_file(&dir.join(FILES))?;
    let (db_sha, _) = crate::tree::sha256_file(&dir.join(m.database_kind.file()))?;
    if files_sha != m.files_sha256 || db_sha != m.database_sha256 {
        let what = match m.kind {
            SnapshotKind::Backup => "backup",
            SnapshotKind::Template => "template",
        };
        return Err(crate::progress::for_people(format!(
            "The {what} is damaged (its checksum does not match), so it was not used and \
             nothing was changed. Choose another {what}."
        )));
    }
    Ok(m)
}

/// A new backup id: the environment and the time, then a few random characters.
pub fn new_backup_id(environment: Environment, at: Timestamp) -> BackupId {
    let t = at.to_offset_date_time();
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let id = format!(
        "{}-{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        environment.as_str(),
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        hex::encode(r)
    );
    BackupId::parse(&id).expect("generated backup ids are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_name_is_free_text_and_its_id_comes_from_it() {
        assert_eq!(
            template_name("  Bakery Classic ").unwrap(),
            "Bakery Classic"
        );
        assert!(template_name(" ").is_err());
        assert!(template_name("Bakery\nClassic").is_err());
        assert!(template_name(&"x".repeat(TEMPLATE_NAME_MAX + 1)).is_err());
        assert_eq!(template_id_for("Bakery Classic").as_str(), "bakery-classic");
        assert_eq!(template_id_for("Café  & Co. v2").as_str(), "caf-co.-v2");
        assert_eq!(template_id_for("Ünïcödé").as_str(), "n-c-d");
        assert_eq!(template_id_for("★★★").as_str(), "template");
        let long = template_id_for(&"ab ".repeat(40));
        assert!(long.as_str().len() <= 64 && !long.as_str().ends_with('-'));
    }

    #[test]
    fn manifests_written_before_template_names_are_read() {
        let old = r#"{"version":1,"kind":"template","id":"bakery","site_id":null,
            "environment":null,"reason":"template","source_url":"http://a.example",
            "table_prefix":"wp_","created_at":"2026-11-25T09:30:00.000Z","files_sha256":"x",
            "files_tar_bytes":1,"files":{"files":1,"bytes":1},"database_sha256":"y",
            "database_bytes":1,"database":{"tables":1,"rows":1,"rewritten_cells":0}}"#;
        let m: Manifest = serde_json::from_str(old).unwrap();
        assert_eq!(m.name, None);
        assert_eq!(m.display_name(), "bakery");
    }
}
