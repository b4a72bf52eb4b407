//! An environment's database, whichever kind it is.

use std::path::{Path, PathBuf};

use crate::copy::{self, DbStats};
use crate::mysql::MysqlDb;
use crate::policy::DatabasePolicy;
use crate::snapshot::DbKind;
use crate::wpconfig::WpConfig;

pub enum SiteDb {
    Mysql(MysqlDb),
    /// WordPress's SQLite integration: the database file.
    Sqlite(PathBuf),
}

impl SiteDb {
    /// Opens a site's database; on MariaDB/MySQL only where the operator's policy allows.
    pub async fn connect(config: &WpConfig, policy: &DatabasePolicy) -> anyhow::Result<SiteDb> {
        match &config.sqlite_file {
            Some(path) => Ok(SiteDb::Sqlite(path.clone())),
            None => Ok(SiteDb::Mysql(MysqlDb::connect(config, policy).await?)),
        }
    }

    pub fn kind(&self) -> DbKind {
        match self {
            SiteDb::Mysql(_) => DbKind::Mysql,
            SiteDb::Sqlite(_) => DbKind::Sqlite,
        }
    }

    pub fn mysql(&self) -> Option<&MysqlDb> {
        match self {
            SiteDb::Mysql(db) => Some(db),
            SiteDb::Sqlite(_) => None,
        }
    }

    pub async fn disconnect(self) {
        if let SiteDb::Mysql(db) = self {
            db.disconnect().await;
        }
    }

    /// What the database takes on disk: its tables of `prefix` on MariaDB/MySQL, the file
    /// on SQLite (not followed if it is a link).
    pub async fn size_bytes(&self, prefix: &str) -> anyhow::Result<u64> {
        match self {
            SiteDb::Mysql(db) => db.size_bytes(prefix).await,
            SiteDb::Sqlite(path) => {
                let path = path.clone();
                crate::blocking(move || Ok(std::fs::symlink_metadata(path)?.len())).await
            }
        }
    }

    /// Writes the database into a snapshot directory: its SHA-256, size and what it holds.
    pub async fn dump(
        &self,
        prefix: &str,
        dir: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> anyhow::Result<(String, u64, DbStats)> {
        match self {
            SiteDb::Mysql(db) => {
                copy::dump(db, prefix, &dir.join(DbKind::Mysql.file()), progress).await
            }
            SiteDb::Sqlite(path) => {
                let out = dir.join(DbKind::Sqlite.file());
                crate::sqlite_db::copy(path, &out, sitetrail_store::private::FILE_MODE).await?;
                let stats = crate::sqlite_db::stats(&out, prefix).await?;
                let (sha, bytes) = crate::blocking(move || crate::tree::sha256_file(&out)).await?;
                Ok((sha, bytes, stats))
            }
        }
    }
}
