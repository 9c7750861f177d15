//! Bar charts as SVG, drawn on the server (so they show without
//! JavaScript): one bar per bucket, uploads stacked on downloads, the
//! exact figures in each bar's `<title>` tooltip.

use crate::domain::history::Bar;
use crate::domain::ByteCount;
use leptos::prelude::*;

const HEIGHT: u64 = 100;
const STEP: usize = 10;

#[component]
pub fn BarChart(
    #[prop(into)] title: String,
    bars: Vec<Bar>,
    #[prop(into)] testid: String,
    /// Label every n-th bar on the axis.
    #[prop(default = 6)]
    every: usize,
) -> impl IntoView {
    let max = bars.iter().map(Bar::total).max().unwrap_or(0).max(1);
    let sent: u64 = bars.iter().map(|b| b.sent).sum();
    let received: u64 = bars.iter().map(|b| b.received).sum();
    let width = bars.len() * STEP;
    let summary = format!("{title}: ↑ {} · ↓ {}", ByteCount::new(sent).human(), ByteCount::new(received).human());
    let scale = move |bytes: u64| (u128::from(bytes) * u128::from(HEIGHT) / u128::from(max)) as u64;
    let count = bars.len();
    let every = every.max(1);
    view! {
        <figure class="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900" data-testid=testid>
            <figcaption class="mb-2 text-sm">
                <span class="font-medium">{title.clone()}</span>
                <span class="ml-2 text-slate-600 dark:text-slate-400 tabular-nums">{format!("↑ {} · ↓ {}", ByteCount::new(sent).human(), ByteCount::new(received).human())}</span>
                <span class="ml-2 text-xs text-slate-600 dark:text-slate-400">"(max "{ByteCount::new(max).human()}")"</span>
            </figcaption>
            <svg viewBox=format!("0 0 {width} {HEIGHT}") role="img" aria-label=summary
                preserveAspectRatio="none" class="h-32 w-full">
                {bars.iter().enumerate().map(|(i, b)| {
                    let x = i * STEP;
                    let (up, down) = (scale(b.sent), scale(b.received));
                    let tip = format!("{}: ↑ {} · ↓ {}", b.key, ByteCount::new(b.sent).human(), ByteCount::new(b.received).human());
                    view! {
                        <g data-testid="bar" data-key=b.key.clone() data-bytes=b.total().to_string()>
                            <title>{tip}</title>
                            <rect x=x.to_string() y="0" width=STEP.to_string() height=HEIGHT.to_string() fill="transparent" />
                            <rect x=(x + 1).to_string() y=(HEIGHT - down).to_string() width=(STEP - 2).to_string()
                                height=down.to_string() class="fill-emerald-500" />
                            <rect x=(x + 1).to_string() y=(HEIGHT - down - up).to_string() width=(STEP - 2).to_string()
                                height=up.to_string() class="fill-sky-500" />
                        </g>
                    }
                }).collect_view()}
            </svg>
            // The axis as text beside the drawing, so it is not stretched with it.
            <div class="mt-1 grid text-[10px] leading-none text-slate-600 dark:text-slate-400" aria-hidden="true"
                style=format!("grid-template-columns: repeat({count}, minmax(0, 1fr))")>
                {bars.iter().enumerate().map(|(i, b)| {
                    let shown = i % every == 0 || i + 1 == count;
                    view! { <span class="overflow-visible whitespace-nowrap">{shown.then(|| b.label.clone())}</span> }
                }).collect_view()}
            </div>
            <p class="mt-1 text-xs text-slate-600 dark:text-slate-400">
                <span class="mr-1 inline-block h-2 w-2 rounded-sm bg-sky-500"></span>"uploaded "
                <span class="ml-2 mr-1 inline-block h-2 w-2 rounded-sm bg-emerald-500"></span>"downloaded"
            </p>
        </figure>
    }
}
