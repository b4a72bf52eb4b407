//! Pages that say what went wrong and what to do, never a stack trace: the dashboard's
//! counterpart of [`ApiError`].

use askama::Template;
use askama_web::WebTemplate;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::pages::session;

/// A link a page offers as the way on.
#[derive(Debug, Clone)]
pub struct Link {
    pub href: String,
    pub label: String,
}

impl Link {
    pub fn new(href: impl Into<String>, label: impl Into<String>) -> Self {
        Link {
            href: href.into(),
            label: label.into(),
        }
    }
}

/// A short page with one message: errors, sign-in help, signed out.
#[derive(Template, WebTemplate, Debug)]
#[template(path = "notice.html")]
pub struct Notice {
    pub title: String,
    pub message: String,
    pub hint: Option<String>,
    pub action: Option<Link>,
}

impl Notice {
    pub fn new(title: impl Into<String>, message: impl Into<String>) -> Self {
        Notice {
            title: title.into(),
            message: message.into(),
            hint: None,
            action: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn action(mut self, href: impl Into<String>, label: impl Into<String>) -> Self {
        self.action = Some(Link::new(href, label));
        self
    }
}

const SIGN_IN_HINT: &str = "Open the sign-in link your hosting provider gave you (in your \
    hosting control panel or in their email). If the link no longer works, ask them for a new one.";

/// A page that answers with an error status.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub notice: Box<Notice>,
    /// Clears the session cookie (it no longer signs anyone in).
    pub end_session: bool,
}

impl PageError {
    pub fn new(status: StatusCode, notice: Notice) -> Self {
        PageError {
            status,
            notice: Box::new(notice),
            end_session: false,
        }
    }

    pub fn not_signed_in() -> Self {
        PageError::new(
            StatusCode::UNAUTHORIZED,
            Notice::new("Sign in to continue", "You are not signed in.").hint(SIGN_IN_HINT),
        )
    }

    pub fn session_ended(expired: bool) -> Self {
        let message = if expired {
            "Your session has expired."
        } else {
            "Your session is no longer valid."
        };
        PageError {
            end_session: true,
            ..PageError::new(
                StatusCode::UNAUTHORIZED,
                Notice::new("Sign in again", message).hint(SIGN_IN_HINT),
            )
        }
    }

    pub fn bad_sign_in_link(expired: bool) -> Self {
        let (title, message) = if expired {
            (
                "This sign-in link has expired",
                "Sign-in links work for a limited time, and this one has run out.",
            )
        } else {
            (
                "This sign-in link does not work",
                "The link is incomplete or was not made for this dashboard.",
            )
        };
        PageError::new(
            StatusCode::UNAUTHORIZED,
            Notice::new(title, message).hint(
                "Ask your hosting provider for a new sign-in link, or open the dashboard again \
                 from your hosting control panel.",
            ),
        )
    }

    pub fn site_not_found() -> Self {
        PageError::new(
            StatusCode::NOT_FOUND,
            Notice::new(
                "Site not found",
                "There is no site at this address that you can open.",
            )
            .hint("Check the address, or go back to your sites.")
            .action("/", "Go to your sites"),
        )
    }

    /// A dashboard address that leads nowhere (a mistyped or outdated link).
    pub fn page_not_found() -> Self {
        PageError::new(
            StatusCode::NOT_FOUND,
            Notice::new(
                "Page not found",
                "There is no page at this address in the dashboard.",
            )
            .hint("The link may be mistyped or out of date. Go back to your sites and open the page from there.")
            .action("/", "Go to your sites"),
        )
    }

    pub fn form_expired() -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            Notice::new(
                "This form has expired",
                "The form was not sent from this dashboard's current page, so nothing was changed.",
            )
            .hint("Go back, reload the page and try again.")
            .action("/", "Back to the dashboard"),
        )
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(_) => PageError::site_not_found(),
            ApiError::Unauthorized(m) => PageError::session_ended(m.contains("expired")),
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "a page failed");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Notice::new(
                        "Something went wrong",
                        "Something went wrong on our side; it has been logged.",
                    )
                    .hint("Try again in a moment.")
                    .action("/", "Back to the dashboard"),
                )
            }
            other => PageError::new(
                other.status(),
                Notice::new("This request could not be read", other.public_message())
                    .action("/", "Back to the dashboard"),
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut res = (self.status, *self.notice).into_response();
        if self.end_session {
            res.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static(session::CLEAR_COOKIE),
            );
        }
        res
    }
}
