//! Forms that post to a server function.
//!
//! Without JavaScript the browser posts the form to the server function's
//! URL and is redirected back, as with Leptos' `ActionForm`. With it,
//! `args` makes the server function's arguments from the form's [`Fields`]
//! and the action is dispatched with them.
//! `ActionForm` instead decodes the form into the arguments by reflection
//! (`serde_qs`), a decoder for every form in the WebAssembly; here each form
//! names its fields.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// A submitted form's fields, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value named `name`, or an empty string, as a browser
    /// posts an empty field.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default()
    }

    /// The first value named `name`, if the form sent one (a checkbox that
    /// is ticked, a hidden flag).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// The fields of the form that `event` submits, as the browser would
    /// post them.
    #[cfg(feature = "hydrate")]
    fn of(event: &SubmitEvent) -> Self {
        use wasm_bindgen::JsCast;
        let form = event.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok());
        let Some(data) = form.and_then(|f| web_sys::FormData::new_with_form(&f).ok()) else {
            return Self::default();
        };
        let mut fields = Vec::new();
        if let Ok(Some(entries)) = web_sys::js_sys::try_iter(&data) {
            for entry in entries.flatten() {
                let pair = web_sys::js_sys::Array::from(&entry);
                if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                    fields.push((name, value));
                }
            }
        }
        Self(fields)
    }

    #[cfg(not(feature = "hydrate"))]
    fn of(_: &SubmitEvent) -> Self {
        Self::default()
    }
}

/// A `<form method="post">` to the server function `S`: `args` makes its
/// arguments from the fields (or from values the form was rendered with)
/// and `action` is dispatched with them.
#[component]
pub fn PostForm<S, A>(
    action: ServerAction<S>,
    args: A,
    #[prop(optional)] class: &'static str,
    children: Children,
) -> impl IntoView
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
    A: Fn(Fields) -> S + Send + Sync + 'static,
{
    let submit = Callback::new(move |fields: Fields| {
        action.dispatch(args(fields));
    });
    form(S::url(), class, submit, children)
}

/// Makes the page's action of `S`, for the forms inside its refreshed part
/// to find with [`page_action`]. Call it in the page component, before the
/// `Transition` its data is refreshed in. `page` names what the page shows
/// (a server's id): the router keeps the page when only that changes, and
/// the answer about another server is then forgotten.
///
/// A form inside that part which made its own action would lose its
/// result, or its dispatch still under way, whenever the page's data is
/// refetched, and its own action causes that: Sync polls the host, the
/// poll is announced, the page refetches, and "Synced 3 peers" vanished.
pub fn provide_page_action<S, K>(page: impl Fn() -> K + 'static)
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
    K: PartialEq + 'static,
{
    let action = ServerAction::<S>::new();
    provide_context(action);
    Effect::new(move |shown: Option<K>| {
        let now = page();
        if shown.is_some_and(|shown| shown != now) {
            action.value().set(None);
        }
        now
    });
}

/// The page's action of `S` ([`provide_page_action`]), or a new one where
/// the page made none.
pub fn page_action<S>() -> ServerAction<S>
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
{
    use_context::<ServerAction<S>>().unwrap_or_default()
}

/// The form itself, the same code for every server function.
fn form(url: &'static str, class: &'static str, submit: Callback<Fields>, children: Children) -> impl IntoView {
    let on_submit = move |event: SubmitEvent| {
        if event.default_prevented() {
            return;
        }
        event.prevent_default();
        submit.run(Fields::of(&event));
    };
    view! {
        <form method="post" action=url class=class on:submit=on_submit>
            {children()}
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_reads_as_its_first_value_and_a_missing_one_as_empty_text() {
        let fields = Fields(vec![
            ("id".to_owned(), "7".to_owned()),
            ("halt".to_owned(), "on".to_owned()),
            ("id".to_owned(), "8".to_owned()),
        ]);
        assert_eq!(fields.text("id"), "7");
        assert_eq!(fields.get("halt").as_deref(), Some("on"));
        assert_eq!(fields.get("note"), None);
        assert_eq!(fields.text("note"), "");
    }
}
