//! pier's own answers (no route, no endpoint, upstream failures): one status and text per
//! case, the same whichever front end (the fast path or Pingora's general path) answers.

use http::header;
use pingora_http::ResponseHeader;

/// An answer pier writes itself: status and a short plain-text body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub code: u16,
    /// Body text (`text/plain; charset=utf-8`).
    pub body: &'static str,
}

/// No route for the request's host and path.
pub const NO_ROUTE: Answer = Answer {
    code: 404,
    body: "pier: no route for this host and path\n",
};
/// The route's Service has no ready endpoint (or does not exist).
pub const NO_ENDPOINT: Answer = Answer {
    code: 503,
    body: "pier: no ready endpoint for this route\n",
};
/// A plain-HTTP request to a host that is served over HTTPS (sent with 308 and `Location`).
pub const HTTPS_ONLY: Answer = Answer {
    code: 308,
    body: "pier: this host is served over HTTPS\n",
};
/// The endpoint could not be reached or answered badly.
pub const UPSTREAM_FAILED: Answer = Answer {
    code: 502,
    body: "pier: upstream failed\n",
};
/// The endpoint did not answer in time.
pub const UPSTREAM_TIMEOUT: Answer = Answer {
    code: 504,
    body: "pier: upstream timed out\n",
};
/// The request could not be parsed.
pub const BAD_REQUEST: Answer = Answer {
    code: 400,
    body: "pier: bad request\n",
};
/// Something went wrong inside pier.
pub const INTERNAL_ERROR: Answer = Answer {
    code: 500,
    body: "pier: internal error\n",
};

impl Answer {
    /// The response head of this answer for a Pingora session: `Server: pier`, the text
    /// body's type and length, and `Location` when given (else `Cache-Control: no-store`).
    pub fn response_header(self, location: Option<&str>) -> pingora_error::Result<ResponseHeader> {
        let mut resp = ResponseHeader::build(self.code, Some(4))?;
        resp.insert_header(header::SERVER, "pier")?;
        resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        resp.insert_header(header::CONTENT_LENGTH, self.body.len())?;
        match location {
            Some(location) => resp.insert_header(header::LOCATION, location)?,
            None => resp.insert_header(header::CACHE_CONTROL, "no-store")?,
        }
        Ok(resp)
    }
}
