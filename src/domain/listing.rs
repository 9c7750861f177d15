//! A server's client list as a page: search, a status filter, a sort and
//! the page asked for, parsed from a URL's query and applied to the facts
//! of every client. Pure: the store hands in the facts, `now` decides who
//! is online.

use crate::domain::accounting::Counters;
use crate::domain::ConnectionStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::net::IpAddr;

/// Rows on a page unless asked otherwise, and the most a page may hold.
pub const PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 500;
/// The longest search text kept; the rest is ignored.
pub const MAX_SEARCH: usize = 100;

/// Which clients a list shows by their state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    #[default]
    All,
    Online,
    /// Seen before but not online now.
    Offline,
    Never,
    Disabled,
}

impl StatusFilter {
    pub const ALL: [StatusFilter; 5] = [Self::All, Self::Online, Self::Offline, Self::Never, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Never => "never",
            Self::Disabled => "disabled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::All => "All",
            Self::Online => "Online",
            Self::Offline => "Offline",
            Self::Never => "Never connected",
            Self::Disabled => "Disabled",
        }
    }

    fn admits(self, c: &ClientFacts) -> bool {
        match self {
            Self::All => true,
            Self::Online => c.connection.is_online(),
            Self::Offline => matches!(c.connection, ConnectionStatus::RecentlySeen | ConnectionStatus::Offline),
            Self::Never => c.connection == ConnectionStatus::NeverConnected,
            Self::Disabled => c.disabled,
        }
    }
}

/// What a list is ordered by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSort {
    #[default]
    Name,
    Ip,
    MonthUp,
    MonthDown,
    TotalUp,
    TotalDown,
    LastSeen,
    Status,
}

impl ClientSort {
    pub const ALL: [ClientSort; 8] = [
        Self::Name,
        Self::Ip,
        Self::MonthUp,
        Self::MonthDown,
        Self::TotalUp,
        Self::TotalDown,
        Self::LastSeen,
        Self::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Ip => "ip",
            Self::MonthUp => "month_up",
            Self::MonthDown => "month_down",
            Self::TotalUp => "total_up",
            Self::TotalDown => "total_down",
            Self::LastSeen => "last_seen",
            Self::Status => "status",
        }
    }

    /// Byte counts and times read best largest / newest first.
    pub fn descending_first(self) -> bool {
        !matches!(self, Self::Name | Self::Ip | Self::Status)
    }
}

/// A page of a server's clients, as asked for in a URL's query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuery {
    /// As typed; matched, ignoring case, against name, key or common name,
    /// IP, email and username.
    pub search: Option<String>,
    pub status: StatusFilter,
    pub sort: ClientSort,
    pub descending: bool,
    /// From 1.
    pub page: u32,
    pub per_page: u32,
}

impl Default for ClientQuery {
    fn default() -> Self {
        Self {
            search: None,
            status: StatusFilter::All,
            sort: ClientSort::Name,
            descending: false,
            page: 1,
            per_page: PER_PAGE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

impl ClientQuery {
    /// The query's `q`, `status`, `sort`, `dir`, `page` and `per_page`;
    /// blank values mean the default, other names are ignored.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, QueryError> {
        let mut q = Self::default();
        let mut dir = None;
        for (name, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match name {
                "q" => q.search = Some(value.chars().take(MAX_SEARCH).collect()),
                "status" => {
                    q.status = StatusFilter::ALL
                        .into_iter()
                        .find(|s| s.as_str() == value)
                        .ok_or_else(|| QueryError("status: all, online, offline, never or disabled".into()))?;
                }
                "sort" => {
                    q.sort = ClientSort::ALL.into_iter().find(|s| s.as_str() == value).ok_or_else(|| {
                        QueryError(
                            "sort: name, ip, month_up, month_down, total_up, total_down, last_seen or status".into(),
                        )
                    })?;
                }
                "dir" => {
                    dir = Some(match value {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(QueryError("dir: asc or desc".into())),
                    });
                }
                "page" => q.page = whole(name, value, 1, u32::MAX)?,
                "per_page" => q.per_page = whole(name, value, 1, MAX_PER_PAGE)?,
                _ => {}
            }
        }
        q.descending = dir.unwrap_or(q.sort.descending_first());
        Ok(q)
    }

    /// The query string that asks for this page (defaults left out).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.search {
            parts.push(format!("q={}", encode(s)));
        }
        if self.status != StatusFilter::All {
            parts.push(format!("status={}", self.status.as_str()));
        }
        if self.sort != ClientSort::Name || self.descending {
            parts.push(format!("sort={}", self.sort.as_str()));
            parts.push(format!("dir={}", if self.descending { "desc" } else { "asc" }));
        }
        if self.page != 1 {
            parts.push(format!("page={}", self.page));
        }
        if self.per_page != PER_PAGE {
            parts.push(format!("per_page={}", self.per_page));
        }
        parts.join("&")
    }

    /// This query on another page.
    pub fn on_page(&self, page: u32) -> Self {
        Self { page: page.max(1), ..self.clone() }
    }

    /// This query sorted by `sort`: the other way round when it already is,
    /// from the first page.
    pub fn sorted_by(&self, sort: ClientSort) -> Self {
        let descending = if self.sort == sort { !self.descending } else { sort.descending_first() };
        Self { sort, descending, page: 1, ..self.clone() }
    }
}

fn whole(name: &str, value: &str, min: u32, max: u32) -> Result<u32, QueryError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| QueryError(format!("{name}: a whole number from {min} to {max}")))
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a list knows of one client to filter and sort it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFacts {
    pub id: i64,
    /// The name, else the identity.
    pub label: String,
    /// The WireGuard public key or the OpenVPN common name.
    pub identity: String,
    pub ip: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub connection: ConnectionStatus,
    pub disabled: bool,
    pub month: Counters,
    pub total: Counters,
    pub last_seen: Option<DateTime<Utc>>,
}

impl ClientFacts {
    fn matches(&self, search: &str) -> bool {
        let has = |text: &str| contains_folded(text, search);
        has(&self.label)
            || has(&self.identity)
            || self.ip.as_deref().is_some_and(has)
            || self.email.as_deref().is_some_and(has)
            || self.username.as_deref().is_some_and(has)
    }
}

/// Whether `text` contains `needle` (already lower-cased), ignoring case.
fn contains_folded(text: &str, needle: &str) -> bool {
    if text.is_ascii() && needle.is_ascii() {
        let (t, n) = (text.as_bytes(), needle.as_bytes());
        n.is_empty() || t.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    } else {
        text.to_lowercase().contains(needle)
    }
}

/// The ids of one page of clients, in order, and the counts around it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub ids: Vec<i64>,
    /// Clients the search and filter kept.
    pub matched: usize,
    /// Every listed client of the server.
    pub total: usize,
    /// Of all of them, online now.
    pub online: usize,
    /// The page shown: the one asked for, or the last when that is past the end.
    pub page: u32,
    pub pages: u32,
}

/// Applies `query` to `clients`.
pub fn select(mut clients: Vec<ClientFacts>, query: &ClientQuery) -> Selection {
    let total = clients.len();
    let online = clients.iter().filter(|c| c.connection.is_online()).count();
    let needle = query.search.as_deref().map(str::to_lowercase);
    clients.retain(|c| query.status.admits(c) && needle.as_deref().is_none_or(|s| c.matches(s)));
    let matched = clients.len();
    sort(&mut clients, query.sort);
    if query.descending {
        clients.reverse();
    }
    let per_page = query.per_page.clamp(1, MAX_PER_PAGE) as usize;
    let pages = matched.div_ceil(per_page).max(1);
    let page = (query.page.max(1) as usize).min(pages);
    let ids = clients.iter().skip((page - 1) * per_page).take(per_page).map(|c| c.id).collect();
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Selection { ids, matched, total, online, page: to_u32(page), pages: to_u32(pages) }
}

/// Ascending by `key`, ties by name then id, so pages never overlap.
fn sort(clients: &mut [ClientFacts], key: ClientSort) {
    let by_name =
        |a: &ClientFacts, b: &ClientFacts| a.label.to_lowercase().cmp(&b.label.to_lowercase()).then(a.id.cmp(&b.id));
    match key {
        ClientSort::Name => clients.sort_by_cached_key(|c| (c.label.to_lowercase(), c.id)),
        ClientSort::Ip => {
            clients.sort_by(|a, b| ip_order(a.ip.as_deref(), b.ip.as_deref()).then_with(|| by_name(a, b)))
        }
        ClientSort::MonthUp => clients.sort_by(|a, b| a.month.rx.cmp(&b.month.rx).then_with(|| by_name(a, b))),
        ClientSort::MonthDown => clients.sort_by(|a, b| a.month.tx.cmp(&b.month.tx).then_with(|| by_name(a, b))),
        ClientSort::TotalUp => clients.sort_by(|a, b| a.total.rx.cmp(&b.total.rx).then_with(|| by_name(a, b))),
        ClientSort::TotalDown => clients.sort_by(|a, b| a.total.tx.cmp(&b.total.tx).then_with(|| by_name(a, b))),
        ClientSort::LastSeen => clients.sort_by(|a, b| a.last_seen.cmp(&b.last_seen).then_with(|| by_name(a, b))),
        ClientSort::Status => clients.sort_by(|a, b| status_rank(a).cmp(&status_rank(b)).then_with(|| by_name(a, b))),
    }
}

/// Online first, disabled last.
fn status_rank(c: &ClientFacts) -> u8 {
    match (c.disabled, c.connection) {
        (true, _) => 4,
        (false, ConnectionStatus::Online) => 0,
        (false, ConnectionStatus::RecentlySeen) => 1,
        (false, ConnectionStatus::Offline) => 2,
        (false, ConnectionStatus::NeverConnected) => 3,
    }
}

/// Addresses in numeric order (`10.0.0.9` before `10.0.0.10`), a prefix
/// length ignored; clients without one last.
fn ip_order(a: Option<&str>, b: Option<&str>) -> Ordering {
    let parse = |ip: Option<&str>| ip.and_then(|s| s.split('/').next()?.trim().parse::<IpAddr>().ok());
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(&b),
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
