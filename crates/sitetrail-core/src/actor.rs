//! Actors: who performed an activity.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::activity::InvalidField;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    Support,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Support => "support",
            ActorKind::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(ActorKind::User),
            "support" => Some(ActorKind::Support),
            "system" => Some(ActorKind::System),
            _ => None,
        }
    }
}

/// An email address. Its `Debug` hides it: a support person's email must not reach logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        let s = s.trim();
        let ok = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidField::new("actor.email", "is not an email address"))
        }
    }

    /// The address itself, for the places that are allowed to show it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Who performed an activity. Users and support staff are people with an email; the
/// system is the platform acting on its own (schedules, recovery).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    #[serde(default)]
    pub email: Option<Email>,
    #[serde(default)]
    pub name: Option<String>,
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("kind", &self.kind)
            .field("email", &self.email)
            .field("name", &self.name.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub const MAX_NAME_CHARS: usize = 200;

impl Actor {
    pub fn system() -> Self {
        Actor {
            kind: ActorKind::System,
            email: None,
            name: None,
        }
    }

    pub fn person(kind: ActorKind, email: Email, name: Option<String>) -> Self {
        Actor {
            kind,
            email: Some(email),
            name,
        }
    }

    pub fn validate(&self) -> Result<(), InvalidField> {
        match (self.kind, &self.email) {
            (ActorKind::System, Some(_)) => {
                return Err(InvalidField::new("actor.email", "the system has no email"));
            }
            (ActorKind::User | ActorKind::Support, None) => {
                return Err(InvalidField::new(
                    "actor.email",
                    "a user or support actor needs an email",
                ));
            }
            _ => {}
        }
        if let Some(name) = &self.name
            && (name.trim().is_empty()
                || name.chars().count() > MAX_NAME_CHARS
                || name.chars().any(char::is_control))
        {
            return Err(InvalidField::new(
                "actor.name",
                format!("must be 1 to {MAX_NAME_CHARS} printable characters"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_an_email_or_name() {
        let actor = Actor::person(
            ActorKind::Support,
            Email::parse("sam@partner.example").unwrap(),
            Some("Sam Rivera".into()),
        );
        let shown = format!("{actor:?}");
        assert!(!shown.contains("sam@"), "{shown}");
        assert!(!shown.contains("Rivera"), "{shown}");
    }

    #[test]
    fn emails_are_checked() {
        assert!(Email::parse("a@b.c").is_ok());
        for bad in ["", "a", "@b", "a@", "a b@c", "a@b@c", "<a@b>"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn people_need_an_email_and_the_system_has_none() {
        let no_email = Actor {
            kind: ActorKind::Support,
            email: None,
            name: None,
        };
        assert!(no_email.validate().is_err());
        let system_with_email = Actor {
            kind: ActorKind::System,
            email: Some(Email::parse("a@b.c").unwrap()),
            name: None,
        };
        assert!(system_with_email.validate().is_err());
        assert!(Actor::system().validate().is_ok());
    }
}
