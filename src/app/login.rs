//! The login page. A plain form: it works with or without JavaScript.

use super::components::{ErrorNote, BUTTON, INPUT};
use super::post_form::{Fields, PostForm};
use super::PageTitle;
use crate::api::fns::Login;
use leptos::prelude::*;

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let error = move || login.value().get().and_then(Result::err);
    view! {
        <PageTitle text="Log in" />
        <main class="flex min-h-screen items-center justify-center px-4">
            <div class="w-full max-w-sm rounded-lg border border-slate-200 bg-white p-6 shadow-sm dark:border-slate-800 dark:bg-slate-900">
                <h1 class="mb-6 text-2xl font-semibold tracking-tight">"Tollgate"</h1>
                <PostForm action=login class="space-y-4"
                    args=move |f: Fields| { Login { username: f.text("username"), password: f.text("password") } }>
                    <label class="block text-sm font-medium">
                        "Username"
                        <input name="username" required autocomplete="username" autofocus class=INPUT />
                    </label>
                    <label class="block text-sm font-medium">
                        "Password"
                        <input name="password" type="password" required autocomplete="current-password" class=INPUT />
                    </label>
                    {move || error().map(|e| view! { <ErrorNote error=e relogin=false /> })}
                    <button type="submit" class=format!("w-full {BUTTON}") disabled=move || login.pending().get()>
                        "Log in"
                    </button>
                </PostForm>
            </div>
        </main>
    }
}
