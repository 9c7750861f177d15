//! Type-erased views without an asynchronous hydration copy.
//!
//! Leptos' `AnyView` keeps, for every view type erased into it, a pointer
//! to that type's `hydrate_async`: a second, asynchronous copy of the
//! whole view's hydration code (elements, tuples, reactive blocks), there
//! for lazily loaded routes and islands. This panel hydrates every page
//! synchronously and uses neither, yet the copies were about a seventh of
//! its WebAssembly. [`Lean`] passes everything through to the view it
//! wraps but hydrates "asynchronously" by hydrating synchronously (the
//! trait's own default), so erasing `Lean(view)` links no async copy.
//! [`IntoLean::lean`] is the panel's `into_any`.

use leptos::children::{ChildrenOptContainer, ToChildren};
use leptos::prelude::{AnyView, IntoAny};
use leptos::tachys::html::attribute::any_attribute::AnyAttribute;
use leptos::tachys::html::attribute::Attribute;
use leptos::tachys::hydration::Cursor;
use leptos::tachys::ssr::StreamBuilder;
use leptos::tachys::view::add_attr::AddAnyAttr;
use leptos::tachys::view::{Position, PositionState, Render, RenderHtml};
use std::future::Future;

/// A view that renders and hydrates exactly as `T` does, except that its
/// `hydrate_async` is the synchronous hydration.
pub struct Lean<T>(pub T);

/// Erases a view into an [`AnyView`] through [`Lean`].
pub trait IntoLean {
    fn lean(self) -> AnyView;
}

impl<T: RenderHtml + Send + 'static> IntoLean for T {
    fn lean(self) -> AnyView {
        Lean(self).into_any()
    }
}

/// Children that are erased through [`Lean`]: a component's `children:
/// Children` prop erases them with `into_any`, and with it their async copy.
pub struct LeanChildren(Box<dyn FnOnce() -> AnyView + Send>);

impl LeanChildren {
    pub fn render(self) -> AnyView {
        (self.0)()
    }
}

impl<F, C> ToChildren<F> for LeanChildren
where
    F: FnOnce() -> C + Send + 'static,
    C: RenderHtml + Send + 'static,
{
    fn to_children(f: F) -> Self {
        LeanChildren(Box::new(move || f().lean()))
    }
}

impl<T: RenderHtml + Send + 'static> ToChildren<ChildrenOptContainer<T>> for LeanChildren {
    fn to_children(t: ChildrenOptContainer<T>) -> Self {
        LeanChildren(Box::new(move || t.0.lean()))
    }
}

impl<T: Render> Render for Lean<T> {
    type State = T::State;

    fn build(self) -> Self::State {
        self.0.build()
    }

    fn rebuild(self, state: &mut Self::State) {
        self.0.rebuild(state);
    }
}

impl<T: AddAnyAttr> AddAnyAttr for Lean<T> {
    type Output<A: Attribute> = Lean<T::Output<A>>;

    fn add_any_attr<A: Attribute>(self, attr: A) -> Self::Output<A>
    where
        Self::Output<A>: RenderHtml,
    {
        Lean(self.0.add_any_attr(attr))
    }
}

impl<T: RenderHtml> RenderHtml for Lean<T> {
    type AsyncOutput = Lean<T::AsyncOutput>;
    type Owned = Lean<T::Owned>;

    const MIN_LENGTH: usize = T::MIN_LENGTH;
    const EXISTS: bool = T::EXISTS;

    fn dry_resolve(&mut self) {
        self.0.dry_resolve();
    }

    fn resolve(self) -> impl Future<Output = Self::AsyncOutput> + Send {
        let inner = self.0.resolve();
        async move { Lean(inner.await) }
    }

    fn html_len(&self) -> usize {
        self.0.html_len()
    }

    fn to_html_with_buf(
        self,
        buf: &mut String,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) {
        self.0.to_html_with_buf(buf, position, escape, mark_branches, extra_attrs);
    }

    fn to_html_async_with_buf<const OUT_OF_ORDER: bool>(
        self,
        buf: &mut StreamBuilder,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) where
        Self: Sized,
    {
        self.0.to_html_async_with_buf::<OUT_OF_ORDER>(buf, position, escape, mark_branches, extra_attrs);
    }

    fn hydrate<const FROM_SERVER: bool>(self, cursor: &Cursor, position: &PositionState) -> Self::State {
        self.0.hydrate::<FROM_SERVER>(cursor, position)
    }

    // `hydrate_async` is the trait's default: `hydrate::<true>` in a future.

    fn into_owned(self) -> Self::Owned {
        Lean(self.0.into_owned())
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use leptos::prelude::*;

    fn table(rows: &[(&'static str, u32)]) -> impl IntoView {
        let rows = rows.to_vec();
        view! {
            <table data-testid="t">
                {rows.into_iter().map(|(name, n)| view! { <tr><td>{name}</td><td>{n}</td></tr> }).collect_view()}
            </table>
        }
    }

    #[test]
    fn a_lean_view_renders_the_same_html_as_the_view_it_wraps() {
        let rows = [("alice", 3), ("bob <&>", 0)];
        let plain = table(&rows).into_any().to_html();
        let lean = table(&rows).lean().to_html();
        assert_eq!(lean, plain);
        assert!(lean.contains("bob &lt;&amp;&gt;"), "{lean}");
    }
}
