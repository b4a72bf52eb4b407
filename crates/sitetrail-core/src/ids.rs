//! Identifiers. Accounts, sites, templates and backups carry the platform's own strings;
//! activity ids are generated (time-ordered UUIDv7) unless the publisher gives one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
pub struct IdError {
    pub what: &'static str,
}

fn is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        // "." and ".." are valid by the character rule but name directories; ids also name
        // snapshot directories, so they are refused.
        && s != "."
        && s != ".."
}

macro_rules! string_id {
    ($name:ident, $what:literal) => {
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if is_valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError { what: $what })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if is_valid(&s) {
                    Ok(Self(s))
                } else {
                    Err(serde::de::Error::custom(IdError { what: $what }))
                }
            }
        }
    };
}

string_id!(AccountId, "account id");
string_id!(SiteId, "site id");
string_id!(TemplateId, "template name");
string_id!(BackupId, "backup id");
string_id!(ActivityId, "activity id");

impl ActivityId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_platform_alphabet() {
        for ok in ["a", "site-1", "acme.corp_2", &"x".repeat(64)] {
            assert!(SiteId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn ids_refuse_everything_else() {
        for bad in [
            "",
            " ",
            "a b",
            "a/b",
            "..",
            ".",
            "é",
            "a\0",
            &"x".repeat(65),
            "<script>",
        ] {
            assert!(SiteId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_activity_ids_are_valid_and_ordered() {
        let a = ActivityId::generate();
        let b = ActivityId::generate();
        assert!(ActivityId::parse(a.as_str()).is_ok());
        assert!(a < b);
    }

    #[test]
    fn deserializing_checks_the_alphabet() {
        assert!(serde_json::from_str::<AccountId>("\"acme\"").is_ok());
        assert!(serde_json::from_str::<AccountId>("\"../etc\"").is_err());
    }
}
