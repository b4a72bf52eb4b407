//! sitetrail's domain, without I/O: what an activity is, who acts and who views, and the one
//! redaction function ([`redact::view`]) through which every reader receives an activity.

pub mod activity;
pub mod actor;
pub mod filter;
pub mod ids;
pub mod redact;
pub mod roster;
pub mod site;
pub mod time;
pub mod viewer;

pub use activity::{
    ActivityKind, Ending, Environment, InvalidField, MAX_DETAILS_BYTES, NewActivity, Service,
    Status, StoredActivity, UnknownWord, fit_details,
};
pub use actor::{Actor, ActorKind, Email};
pub use filter::{ActivityFilter, Cursor, Direction, FilterError, Page, RawQuery, UserPredicate};
pub use ids::{AccountId, ActivityId, BackupId, IdError, SiteId, TemplateId};
pub use redact::{
    ActivityView, IdMask, PlainIds, Sight, UserView, hides_from_clients, search_text, view,
};
pub use roster::Roster;
pub use site::{Account, Colour, EnvironmentSpec, Site, SiteUrl};
pub use time::Timestamp;
pub use viewer::{Audience, Viewer};
