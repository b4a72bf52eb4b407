//! Accounts and sites as the platform registers them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{AccountId, InvalidField, SiteId};

/// The URL of an environment: `http` or `https`, a host, an optional port and path; no
/// query, fragment or credentials. Kept without a trailing slash, as WordPress keeps `home`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SiteUrl(String);

impl SiteUrl {
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        let bad = || InvalidField::new("url", "must be an http(s) URL without query or fragment");
        let s = s.trim();
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let host_port = rest.split('/').next().unwrap_or("");
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, port)| {
            if port.parse::<u16>().is_ok() { h } else { "" }
        });
        let ok = s.len() <= 2_000
            && !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
            })
            && !rest.contains(['?', '#', '@', ' ', '\\', '"', '<', '>'])
            && !rest.chars().any(char::is_control);
        if !ok {
            return Err(bad());
        }
        Ok(SiteUrl(s.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteUrl({})", self.0)
    }
}

impl<'de> Deserialize<'de> for SiteUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SiteUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A partner's colour for the dashboard, `#rrggbb`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Colour(String);

impl Colour {
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        let ok =
            s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Colour(s.to_ascii_lowercase()))
            .ok_or_else(|| InvalidField::new("partner_colour", "must be #rrggbb"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Colour({})", self.0)
    }
}

impl<'de> Deserialize<'de> for Colour {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Colour::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub partner: String,
    pub partner_colour: Option<Colour>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentSpec {
    pub url: SiteUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docroot: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: SiteId,
    pub account_id: AccountId,
    pub name: String,
    pub live: EnvironmentSpec,
    pub staging: Option<EnvironmentSpec>,
}

pub const MAX_NAME_CHARS: usize = 200;

/// Names shown in the dashboard: 1 to 200 printable characters.
pub fn check_name(field: &'static str, name: &str) -> Result<(), InvalidField> {
    let n = name.trim().chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(InvalidField::new(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(())
}

impl EnvironmentSpec {
    pub fn validate(&self, field: &'static str) -> Result<(), InvalidField> {
        if let Some(d) = &self.docroot
            && (!d.starts_with('/') || d.contains('\0') || d.split('/').any(|p| p == ".."))
        {
            return Err(InvalidField::new(
                field,
                "docroot must be an absolute path without '..'",
            ));
        }
        Ok(())
    }
}

impl Site {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_name("name", &self.name)?;
        self.live.validate("live.docroot")?;
        if let Some(staging) = &self.staging {
            staging.validate("staging.docroot")?;
            if staging.url == self.live.url {
                return Err(InvalidField::new(
                    "staging.url",
                    "must differ from live's URL",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_urls_are_http_without_query() {
        assert_eq!(
            SiteUrl::parse("https://shop.example/").unwrap().as_str(),
            "https://shop.example"
        );
        assert!(SiteUrl::parse("http://127.0.0.1:8081/blog").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https://a b",
            "https://x/?q=1",
            "https://u:p@x",
            "x.example",
            "https://x:99999",
        ] {
            assert!(SiteUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn colours_are_hex() {
        assert_eq!(Colour::parse("#0A7CFF").unwrap().as_str(), "#0a7cff");
        assert!(Colour::parse("red").is_err());
        assert!(Colour::parse("#12345g").is_err());
    }
}
